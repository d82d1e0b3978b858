"""Where a sweep cell stands, read from the files the drivers write: the one place that knows those paths and
keys, so that a change to where runs write or to what enters a fingerprint is one edit here.

- done: the unit's reusable record exists with the config's own `fingerprint()` (LAMA: the relation file under
  results/lama/..., key `config_fingerprint`; SuperGLUE: the seed record under runs/superglue/.../<fingerprint>/,
  or the task's assembled result under results/superglue/... holding the seed with the same fingerprint);
- failed: the executor's failure record (runs/sweep/failed/<cell>.json, with the error line) and no result;
- stale: a result for the unit exists but with another fingerprint (the reason names the fields that differ);
- pending: nothing yet.

A group is assembled when its summary (LAMA summary.json, SuperGLUE <task>.json) covers exactly its units with
the same numbers and fingerprint.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from repro.atomic import atomic_write_json
from repro.errors import ConfigError
from repro.experiment.engine import Workspace
from repro.sweep.cells import Cell, Group

SWEEP_DIR = "sweep"  # under the runs folder: failure records and per-cell logs


class State(str, Enum):
    DONE = "done"
    PENDING = "pending"
    FAILED = "failed"
    STALE = "stale"


@dataclass
class CellState:
    state: State
    reason: str = ""
    wall_time_s: Optional[float] = None  # of a finished cell, as its result records it
    device: str = ""  # where it ran (environment of its result)

    @property
    def runnable(self) -> bool:
        return self.state is not State.DONE


def read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------------------ paths
def log_path(ws: Workspace, key: str) -> Path:
    return ws.runs_root / SWEEP_DIR / "logs" / f"{key}.log"


def failure_path(ws: Workspace, key: str) -> Path:
    return ws.runs_root / SWEEP_DIR / "failed" / f"{key}.json"


def lama_dir(ws: Workspace, group: Group) -> Path:
    from repro.experiment.lama import output_dir

    return output_dir(ws.results_root, group.backbone_name, group.config())


def superglue_result(ws: Workspace, group: Group, task: Optional[str] = None) -> Path:
    config = group.kwargs
    return (ws.results_root / "superglue" / config["setting"] / group.backbone_name / config["method"]
            / f"{task or config['task']}.json")


def superglue_seed_records(ws: Workspace, group: Group, config, seed: int) -> list[Path]:
    """The seed's record under runs/ for the pattern the run will use (any pattern when it is unknown here)."""
    from tasks.registry import get_task

    runs_dir = (ws.runs_root / "superglue" / config.setting / group.backbone_name / config.method_entry.name
                / config.train_task / config.fingerprint())
    style = config.method_entry.style.value
    variant = config.pattern or ("classifier" if style == "classifier" else None)
    if variant is None and group.kind:
        variant = get_task(config.train_task).default_variant(style, causal=group.kind == "causal")
    if variant is None:
        return sorted(runs_dir.glob(f"*/seed{seed}.json"))
    return [runs_dir / variant / f"seed{seed}.json"]


# ------------------------------------------------------------------------------------------------ states
def cell_state(cell: Cell, ws: Workspace) -> CellState:
    """The cell's state from the results and runs folders (see the module docstring)."""
    found = _lama_state(cell, ws) if cell.benchmark == "lama" else _superglue_state(cell, ws)
    if found.state is State.DONE:
        return found
    failure = read_json(failure_path(ws, cell.key))
    if failure is not None:
        return CellState(State.FAILED, failure.get("error", "failed"))
    return found


def _lama_state(cell: Cell, ws: Workspace) -> CellState:
    config = cell.config()
    data = read_json(lama_dir(ws, cell.group) / f"{cell.unit}.json")
    if data is None:
        return CellState(State.PENDING)
    stored = data.get("config", {})
    config.backbone_kind = config.backbone_kind or stored.get("backbone_kind", "")
    if data.get("config_fingerprint") == config.fingerprint():
        return CellState(State.DONE, "", data.get("wall_time_s"), _device(data))
    return CellState(State.STALE, config_diff(config.to_dict(), stored))


def _superglue_state(cell: Cell, ws: Workspace) -> CellState:
    config = cell.config()
    if not isinstance(cell.unit, tuple):  # a coupled cell is done when its group is assembled
        records = [read_json(p) for p in superglue_seed_records(ws, cell.group, config, cell.seeds[0])]
        for record in records:
            if record is not None and record.get("fingerprint") == config.fingerprint():
                return CellState(State.DONE, "", record.get("wall_time_s"), "")
    data = read_json(superglue_result(ws, cell.group))
    if data is None or not set(map(str, cell.seeds)) <= set(data.get("seeds", {})):
        return CellState(State.PENDING)
    if superglue_fingerprint(data) != config.fingerprint():
        return CellState(State.STALE, config_diff(config.to_dict(), data.get("config", {})))
    if assembled(cell.group, ws):
        share = data.get("wall_time_s") if isinstance(cell.unit, tuple) else _per_seed(data)
        return CellState(State.DONE, "", share, _device(data))
    return CellState(State.PENDING, "in the task's result, but without its seed record under the runs folder")


def _per_seed(data: dict[str, Any]) -> Optional[float]:
    """A seed's share of a run's wall time (the result records the run's, not each seed's)."""
    wall = data.get("wall_time_s")
    return None if wall is None else wall / max(1, len(data.get("seeds", {})))


def _device(data: dict[str, Any]) -> str:
    env = data.get("environment") or {}
    device = env.get("device", "")
    return f"{device} ({env['cpu_model']})" if device == "cpu" and env.get("cpu_model") else device


def superglue_fingerprint(data: dict[str, Any]) -> Optional[str]:
    """The fingerprint of the config a SuperGLUE result was made with (it records the config, not the hash)."""
    from repro.experiment.superglue_config import SuperGLUEConfig

    try:
        return SuperGLUEConfig.from_dict(data.get("config", {})).fingerprint()
    except (ConfigError, TypeError, KeyError):
        return None


def assembled(group: Group, ws: Workspace) -> bool:
    """Whether the group's summary file covers exactly its units, with the same fingerprint and numbers."""
    if group.benchmark == "lama":
        summary = read_json(lama_dir(ws, group) / "summary.json")
        if summary is None or set(summary.get("relations", {})) != set(group.units):
            return False
        for rid in group.units:
            data = read_json(lama_dir(ws, group) / f"{rid}.json")
            if data is None or data.get("p_at_1") != summary["relations"][rid].get("p_at_1"):
                return False
        return True
    data = read_json(superglue_result(ws, group))
    if data is None:
        return False
    seeds = [s for unit in group.units for s in (unit if isinstance(unit, tuple) else (unit,))]
    return (set(data.get("seeds", {})) == set(map(str, seeds))
            and superglue_fingerprint(data) == group.config().fingerprint())


def config_diff(wanted: dict[str, Any], found: dict[str, Any]) -> str:
    """Why a result is stale: the config fields that differ (found -> wanted), cell-specific ones left out."""
    ignore = {"relations", "seed", "seeds", "task", "pattern", "template", "backbone_kind", "sequential"}
    flat_wanted, flat_found = _flatten(wanted), _flatten(found)
    changed = [f"{k}: {flat_found.get(k, '(absent)')!r} -> {flat_wanted.get(k, '(absent)')!r}"
               for k in sorted(set(flat_wanted) | set(flat_found))
               if k.split(".")[0] not in ignore and k != "train.seed" and flat_wanted.get(k) != flat_found.get(k)]
    if not changed:
        return "another config fingerprint, same fields (what enters the fingerprint changed)"
    return "config differs: " + "; ".join(changed[:4]) + (f"; +{len(changed) - 4} more" if len(changed) > 4 else "")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("train", "fidelity_choices"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


# ---------------------------------------------------------------------------------------- failure records
def write_failure(ws: Workspace, key: str, error: BaseException | str) -> str:
    """Record a failed cell (its error line; the traceback is in its log) and return the line."""
    line = error if isinstance(error, str) else one_line(error)
    atomic_write_json(failure_path(ws, key), {"cell": key, "error": line, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                                              "log": str(log_path(ws, key))})
    return line


def clear_failure(ws: Workspace, key: str) -> None:
    failure_path(ws, key).unlink(missing_ok=True)


def one_line(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return (lines[-1] if lines else repr(error)).strip().splitlines()[0][:500]
