"""What decides a unit's numbers, as named fields, and the fingerprint that keys reuse and resume on them.

A finished unit (a LAMA relation, a SuperGLUE seed) is reused, and an interrupted one resumed, only when every
field that changes its numbers is the same: the run config (method, preset, data subset sizes, dtype, training
and fidelity settings), the torch thread count and device kind (both change floating-point sums: RTE MP 52.71
with 1 thread, 51.62 with 2), the world size of a data-parallel run in reduced precision (`engine.processes_field`),
the code versions of the scoring path and of the path that builds inputs and trains, and the sha256 of every data
file the unit reads. A mismatch recomputes, and `differences` says in one line which fields differ.

Data hashes are cached per (path, mtime, size) in memory and in `$REPRO_CACHE_DIR/file-sha256.json`, so a
rerun does not reread the data. The code version hashes the scoring modules' syntax trees without docstrings:
editing a comment or a docstring keeps it, editing code changes it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from repro.atomic import atomic_write_json

# The modules that turn LM outputs into predictions and scores (repro/core/inference.py, the scorers): the
# "scorer code version" of a result. Relative to the project root.
SCORER_CODE = ("repro/core/inference.py", "repro/scorers")
# The modules that read the data, build the model's inputs, train and select (dev checks, early stopping): the
# "training code version". Without it an edit to the training loop, the model wrapper, the prompt encoder, a
# run's selection or a task's patterns would leave finished units reusable and checkpoints resumable under code
# that no longer makes their numbers. Every unit carries it (an MP unit trains nothing but reads its inputs
# through the template and the task files), so any code edit here recomputes (a comment or docstring does not).
TRAINING_CODE = ("repro/data.py", "repro/methods.py", "repro/core/backbone.py", "repro/core/batch.py",
                 "repro/core/encoder_stack.py", "repro/core/joint.py", "repro/core/model.py",
                 "repro/core/template.py", "repro/core/training.py", "repro/experiment/joint.py",
                 "repro/experiment/lama.py", "repro/experiment/superglue.py", "repro/ptuning", "tasks")
_CACHE_NAME = "file-sha256.json"
_memory: dict[str, dict[str, Any]] = {}


def _cache_path() -> Path:
    return Path(os.environ.get("REPRO_CACHE_DIR", Path.home() / ".cache" / "ptuning-repro")) / _CACHE_NAME


def _load_cache() -> dict[str, dict[str, Any]]:
    if not _memory:
        try:
            data = json.loads(_cache_path().read_text())
            _memory.update(data if isinstance(data, dict) else {})
        except (OSError, ValueError):
            pass
    return _memory


def file_sha256(path: Path, *, save: bool = True) -> str:
    """The sha256 of a file, recomputed only when its path, mtime or size changed since the last time
    (`save=False`: the caller saves the cache once, `save_cache`)."""
    path = Path(path).resolve()
    stat = path.stat()
    cache = _load_cache()
    entry = cache.get(str(path))
    if entry and entry.get("mtime_ns") == stat.st_mtime_ns and entry.get("size") == stat.st_size:
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    cache[str(path)] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, "sha256": digest.hexdigest()}
    _dirty.add(str(path))
    if save:
        save_cache()
    return digest.hexdigest()


_dirty: set[str] = set()


def save_cache() -> None:
    """Write the hash cache when something was hashed, without the entries of files that are gone."""
    if not _dirty:
        return
    _dirty.clear()
    cache = _load_cache()
    for gone in [p for p in cache if not Path(p).exists()]:
        del cache[gone]
    try:
        atomic_write_json(_cache_path(), cache)
    except OSError:  # a read-only home only costs the next run a reread
        pass


def data_hashes(root: Path, relpaths: Iterable[str]) -> dict[str, str]:
    """relpath -> sha256 of each file under the data root that exists (a missing file is absent here; the
    reader reports it)."""
    root = Path(root)
    hashes = {rel: file_sha256(root / rel, save=False) for rel in sorted(set(relpaths)) if (root / rel).is_file()}
    save_cache()
    return hashes


def _without_docstrings(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@lru_cache(maxsize=None)
def code_version(parts: tuple[str, ...] = SCORER_CODE) -> str:
    """A hash of the code (not the comments or docstrings) of `parts`, files or folders of .py files."""
    from repro.results import PROJECT_ROOT

    digest = hashlib.sha256()
    for part in parts:
        path = PROJECT_ROOT / part
        if not path.exists() and part == "tasks":  # an installed package holds the checkout's tasks/ as repro/tasks
            path = PROJECT_ROOT / "repro" / "tasks"
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:  # named as in the checkout, so an installed copy of the same code hashes the same
            name = Path(part) / file.relative_to(path) if path.is_dir() else Path(part)
            digest.update(name.as_posix().encode())
            digest.update(_without_docstrings(file.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()[:16]


def unit_fields(config: Mapping[str, Any], *, threads: int, device: str, data: Mapping[str, str],
                processes: int = 1) -> dict[str, Any]:
    """Every field that decides a unit's numbers (`config`: the run config's fingerprint data). `processes`: the
    world size of a data-parallel run where it changes the numbers (`engine.processes_field`); absent when 1,
    so a one-process unit's fields are what they were before data-parallel runs existed."""
    fields = {"config": dict(config), "threads": int(threads), "device": device_kind(device),
              "scorer_code": code_version(), "training_code": code_version(TRAINING_CODE),
              "python": f"{sys.version_info.major}.{sys.version_info.minor}",
              "data": dict(data)}
    if processes > 1:
        fields["processes"] = int(processes)
    return fields


def device_kind(device: str) -> str:
    """`cuda:1` -> `cuda`: the kind of device changes kernels; which one of a kind does not."""
    return str(device).split(":", 1)[0]


def fields_fingerprint(fields: Mapping[str, Any]) -> str:
    from repro.experiment.config import fingerprint  # here: the report reads `differences` without torch

    return fingerprint(dict(fields))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(old: Optional[Mapping[str, Any]], new: Mapping[str, Any], limit: int = 4) -> str:
    """One line naming what differs between two `unit_fields` (old -> new); data files by name only."""
    if not old:
        return "written before fingerprints named their fields"
    a, b = _flatten(old), _flatten(new)
    changed = []
    for key in sorted(set(a) | set(b), key=lambda k: (not k.startswith("config."), k)):
        if a.get(key, "<absent>") == b.get(key, "<absent>"):
            continue
        name = key.removeprefix("config.")
        if key.startswith("data."):
            state = "added" if key not in a else "missing" if key not in b else "changed"
            changed.append(f"data file {key[5:]} {state}")
        elif key in ("scorer_code", "training_code"):
            what = key.replace("_", " ")
            state = "not recorded before" if key not in a else "not recorded now" if key not in b else "changed"
            changed.append(f"{what} {state}")
        else:
            changed.append(f"{name} {a.get(key, '<absent>')} -> {b.get(key, '<absent>')}")
    if not changed:
        return "same fields, other fingerprint"
    more = f" (+{len(changed) - limit} more)" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more
