"""Result records: every result JSON carries its config, environment, command, git commit and wall time,
and is written atomically (a crashed run leaves no half-written result).

The schema names live here, next to the writer's provenance, so that the runs that write a file and the
report that reads it name one constant. Nothing here imports torch at import time: the report (which must
stay torch-free) imports the schemas and `PROJECT_ROOT` from this module.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from repro.atomic import atomic_write_json

PACKAGES = ("torch", "transformers", "tokenizers", "peft", "datasets", "numpy", "scikit-learn", "gguf", "safetensors")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUNS_DIR = PROJECT_ROOT / "runs"  # git-ignored: where a user's runs write unless --results says otherwise
REFERENCE_DIR = PROJECT_ROOT / "results"  # the committed reference results (written only as --results results)
# Only results/ may differ from the commit: a run that writes a result must not mark the next one dirty.
RESULTS_PATHSPEC = ":(exclude)results"

# The `schema` field of each result file this suite writes.
LAMA_RELATION_SCHEMA = "repro.lama.relation/1"  # one relation's P@1 (results/lama/<backbone>/<method>-<vocab>/P*.json)
LAMA_SUMMARY_SCHEMA = "repro.lama.summary/1"  # one LAMA run over its relations (.../summary.json)
SUPERGLUE_SCHEMA = "repro.superglue/1"  # one SuperGLUE run, all seeds (results/superglue/<setting>/...)
SUPERGLUE_SEED_SCHEMA = "repro.superglue.seed/1"  # one seed's record under runs/, reused on a rerun

LAMA_DEFAULT_SEED = 34  # the authors' LAMA seed: its relation files sit at the top of a LAMA run folder


def seed_folder(run_dir: Path, seed: int) -> Path:
    """Where one seed's LAMA relation files (and resume state) live: the run folder itself for the authors' seed
    (the default, so a one-seed run keeps the layout every reader knows), `seed<S>/` inside it for any other.
    Here, beside the schemas, so the writer and the torch-free readers (the report) share the one rule."""
    return run_dir if seed == LAMA_DEFAULT_SEED else run_dir / f"seed{seed}"


def environment(dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """Package versions, device, dtype, threads and processes: what a reader needs to rerun the numbers.
    `processes`: a data-parallel run's world size (`repro.core.distributed`); it enters the fingerprint only in
    reduced precision, where it changes the numbers (`repro.experiment.engine.processes_field`)."""
    import torch  # here, not at import: the report reads this module's constants without torch

    from repro.core import distributed

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processes": distributed.world_size(),
        "device": device,
        "gpu_model": gpu_model(device),
        "bf16_path": bf16_path() if device == "cpu" else None,
        "dtype": dtype,
        "packages": versions,
    }


def gpu_model(device: str) -> Optional[str]:
    """The GPU's name when the run used one (None on CPU)."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.device(device))


BF16_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")  # /proc/cpuinfo flags that decide oneDNN's bf16 kernels
_PROBE = "import torch; a = torch.ones(64, 64, dtype=torch.bfloat16); a @ a"


@lru_cache(maxsize=1)
def bf16_path() -> dict[str, Any]:
    """How this CPU computes bf16 matmuls: oneDNN's ISA and the kernel one bf16 matmul runs (a child process with
    ONEDNN_VERBOSE=1, which oneDNN reads once at start, so it cannot be switched on here), the CPU's bf16 flags,
    and ONEDNN_MAX_CPU_ISA if set. bf16 results differ between AMX and AVX512-BF16 kernels (REPRODUCING.md,
    "Known spread"), so every result names its path. Measured once per process (about 2 s)."""
    found: dict[str, Any] = {"onednn_isa": None, "bf16_matmul_kernel": None,
                             "cpu_flags": _cpu_flags(BF16_FLAGS),
                             "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return found
    for line in out.splitlines():
        parts = line.split(",")
        if ",info,cpu,isa:" in line:
            found["onednn_isa"] = line.split("isa:", 1)[1].strip()
        elif len(parts) > 5 and parts[2:5] == ["primitive", "exec", "cpu"] and parts[5] == "matmul":
            found["bf16_matmul_kernel"] = parts[6]
    return found


def _cpu_flags(wanted: tuple[str, ...]) -> list[str]:
    """Which of `wanted` /proc/cpuinfo lists for this CPU (empty where there is no /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else the platform's processor string): bf16 results and wall
    times differ between CPU models (AMX vs AVX512-BF16 kernels), so every result names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> Optional[str]:
    """HEAD, with `-dirty` when tracked files outside results/ differ from it (untracked files don't count:
    they cannot change what the committed code computes; results/ doesn't either, and writing results is
    what runs do)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", RESULTS_PATHSPEC],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance() -> dict[str, Any]:
    """Which code computed a result, on which CPU, when: what a reused result is announced with."""
    return {"git_commit": git_commit(), "cpu_model": cpu_model(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0:1] = ["python", "-m", "repro"]
    return shlex.join(argv)


@dataclass
class RunRecord:
    """Provenance shared by the result files of one command."""

    dtype: str = "float32"
    device: str = "cpu"
    started: float = field(default_factory=time.perf_counter)
    command: str = field(default_factory=command_line)

    def stamp(self, payload: dict[str, Any], *, wall_time_s: Optional[float] = None) -> dict[str, Any]:
        payload = dict(payload)
        payload["environment"] = environment(self.dtype, self.device)
        payload["command"] = self.command
        payload.update(provenance())
        payload["wall_time_s"] = round(wall_time_s if wall_time_s is not None else time.perf_counter() - self.started, 2)
        return payload


def write_result(path: Path, payload: dict[str, Any]) -> Path:
    """Write a result atomically. In a data-parallel run (`repro.core.distributed`) the main process writes it
    and every process waits until it is there, so each one reads the same files afterwards."""
    from repro.core import distributed  # torch-free, like this module

    distributed.once(lambda: atomic_write_json(path, payload))
    return Path(path)


def load(root: str | Path = "results") -> Any:
    """Every result under `root` as one tidy pandas DataFrame (`repro.report.frame`: columns and use)."""
    from repro.report.frame import load as load_frame  # the report imports this module: import on use

    return load_frame(root)
