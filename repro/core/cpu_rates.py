"""Whether this CPU multiplies in a compute dtype at a usable rate, measured rather than guessed from CPU flags.

float16 (a frozen LM cast as the authors' LAMA code casts it, fidelity item `frozen_lm_dtype=float16`) has
fast kernels on GPUs and on CPUs with AVX512-FP16 or AMX-FP16; on others PyTorch's CPU float16 matmul falls back
to a slow path (an AMD EPYC, one thread: 1.7 GFLOP/s against 63 in float32 and 192 in bfloat16), so a run that
takes an hour in float32 takes well over a day. `Workspace.open` prints `slow_dtype_note` before such a run.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch

from repro.core.backbone import COMPUTE_DTYPES

SLOW_FACTOR = 4.0  # a dtype this many times slower than float32 gets a note (float16's fallback is ~35x)


def matmul_gflops(dtype: torch.dtype, *, rows: int = 64, inner: int = 576, cols: int = 1536, reps: int = 3,
                  warmups: int = 1, statistic: Callable[[list[float]], float] = min) -> float:
    """GFLOP/s of a (rows x inner) @ (inner x cols) product in `dtype` on the current threads, over `reps` timed
    runs after `warmups` (`statistic` of their times: the best by default). The default shape is a small LM's
    projection on a short batch (~60 MFLOP, well under a second even on float16's slow path); the benchmarks'
    peak (`benchmarks/machine.py`) times a large square GEMM with the same loop."""
    a = torch.randn(rows, inner).to(dtype)
    b = torch.randn(inner, cols).to(dtype)
    for _ in range(warmups):
        a @ b
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * rows * inner * cols / max(statistic(times), 1e-9) / 1e9


def slow_dtype_note(dtype: str, device: str) -> Optional[str]:
    """A note when the LM is to compute in `dtype` on a CPU that multiplies in it at under 1/SLOW_FACTOR of its
    float32 rate (None otherwise; float32 and bfloat16 are not measured)."""
    if dtype != "float16" or torch.device(device).type != "cpu":
        return None
    slow = matmul_gflops(COMPUTE_DTYPES[dtype])
    fp32 = matmul_gflops(torch.float32)
    if slow * SLOW_FACTOR >= fp32:
        return None
    return (f"note: the frozen LM computes in float16 (fidelity item frozen_lm_dtype=float16, as the authors' LAMA "
            f"code casts it on a GPU), which this CPU multiplies at {slow:.1f} GFLOP/s against {fp32:.1f} in "
            f"float32 (measured now), so this run will take about {fp32 / slow:.0f}x as long as in float32; "
            "`--fidelity-item frozen_lm_dtype=preset` computes in the preset's dtype")
