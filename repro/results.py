"""Result records: every result JSON carries its config, environment, command, git commit and wall time,
and is written atomically (a crashed run leaves no half-written result)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import torch

from repro.atomic import atomic_write_json

PACKAGES = ("torch", "transformers", "tokenizers", "peft", "datasets", "numpy", "scikit-learn", "gguf", "safetensors")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def environment(dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """Package versions, device, dtype and threads: what a reader needs to rerun the numbers."""
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
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "dtype": dtype,
        "packages": versions,
    }


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


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
        payload["git_commit"] = git_commit()
        payload["wall_time_s"] = round(wall_time_s if wall_time_s is not None else time.perf_counter() - self.started, 2)
        return payload


def write_result(path: Path, payload: dict[str, Any]) -> Path:
    return atomic_write_json(path, payload)
