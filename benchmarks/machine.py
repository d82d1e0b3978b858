"""The machine's yardsticks for the benchmarks: measured matmul peak, FLOP counts of a backbone's work, CPU name.

Every benchmark states its speed three ways: as a ratio against a baseline run in the same process (these
machines are noisy), as achieved GFLOP/s from a FLOP count of the work (the model's shape times the tokens it
processed), and as the fraction of this machine's matmul peak measured in the same run (a large square GEMM
in the same dtype and thread count). The fraction is what compares across machines (an AMD EPYC with
AVX512-BF16 and an Intel Xeon with AMX differ several-fold in bf16 rate).

FLOP convention: 2 per multiply-add. A decoder forward costs 2 x (non-embedding parameters) per token, plus
attention scores and values (4 x layers x hidden x context per token), plus the LM head only where it is
read (2 x hidden x ids read). A backward through a frozen LM needs only input gradients: about the forward
again (weight gradients are not computed); with the LM trained, twice the forward.
"""

from __future__ import annotations

import json
import resource
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from repro.core.cpu_rates import matmul_gflops
from repro.results import cpu_model, provenance  # cpu_model re-exported: the benchmarks print it


def matmul_peak_gflops(dtype: torch.dtype, size: int = 4096, repeats: int = 8) -> float:
    """GFLOP/s of a `size`-square GEMM in `dtype` on the current threads (median of `repeats` timed runs after
    two warm-ups)."""
    return matmul_gflops(dtype, rows=size, inner=size, cols=size, reps=repeats, warmups=2, statistic=statistics.median)


@dataclass(frozen=True)
class ModelShape:
    """What a FLOP count needs from a decoder/encoder LM."""

    non_embedding_params: int
    layers: int
    hidden: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> "ModelShape":
        embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if out is not None:
            embeddings |= {id(p) for p in out.parameters()}
        params = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
        config = model.config
        return cls(params, int(config.num_hidden_layers), int(config.hidden_size))

    def forward_flops(self, lengths: list[int], head_ids_read: int = 0) -> float:
        """FLOPs of one forward over sequences of these (unpadded) lengths, reading `head_ids_read` logits."""
        tokens = sum(lengths)
        attention = sum(4 * self.layers * self.hidden * n * n for n in lengths) / 2  # causal: half the square
        return 2 * self.non_embedding_params * tokens + attention + 2 * self.hidden * head_ids_read


def rate_line(label: str, flops: float, seconds: float, peak_gflops: float) -> str:
    """'label: X GFLOP/s, Y% of the measured peak'."""
    gflops = flops / seconds / 1e9
    return f"{label}: {gflops:.0f} GFLOP/s, {100 * gflops / peak_gflops:.0f}% of the measured peak ({peak_gflops:.0f})"


def write_report(out: str | Path, report: dict, text: str) -> None:
    """The benchmark's figures as JSON at `out` and its printed table next to it (.txt); prints the table. The
    JSON names the code, CPU and date it was measured with, as every result file does (a benchmark that records
    its own keeps them)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    made = provenance()  # what every result file records, under the benchmarks' names
    stamped = {"commit": made["git_commit"], "cpu": made["cpu_model"], "date": made["date"], **report}
    out.write_text(json.dumps(stamped, indent=2) + "\n")
    out.with_suffix(".txt").write_text(text + "\n")
    print(text)


def reset_peak_rss() -> None:
    """Reset this process's resident-set high-water mark (Linux), so the peak read later covers only what runs
    after it (the model in memory plus the measured operation), not the transient peak of loading."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark in MiB (since `reset_peak_rss`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
