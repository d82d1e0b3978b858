"""Where a sweep cell stands, read exactly the way the drivers decide what a rerun reuses: their own functions
(`repro.experiment.lama.relation_fields`, `repro.experiment.superglue.run_fields`, `seed_reusable`,
`repro.experiment.engine.ReuseLog` / `keyed_path`) on the workspace the cell will run with (its device and
threads), so a change to where runs write or to what enters a fingerprint needs no edit here.

- done: a rerun would reuse the unit (LAMA: the relation file in the run folder carries the fingerprint of
  the relation's `unit_fields`; SuperGLUE: the seed's record sits in the run folder's `.resume/<task>/<that
  fingerprint>/`, with its RNG state under `seed_rule=once`);
- stale: a rerun would recompute a unit that has a result: the reason is `differences(...)`'s line, what the
  driver prints when it recomputes (the relation file's recorded fields, a resume folder's `fields.json`, or the
  task result's recorded fields once its resume state is gone);
- failed: the executor's failure record (with the error line) and no reusable result;
- pending: nothing yet.

A run is summarised when its summary files (LAMA summary.json; SuperGLUE <task>.json and its diagnostics')
hold every unit of the sweep with the numbers a rerun would reuse.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

from repro.atomic import atomic_write_json
from repro.experiment.engine import Workspace, read_json
from repro.sweep.cells import Cell, Group

SWEEP_DIR = "sweep"  # in the results folder's resume state: failure records and per-cell logs


class State(str, Enum):
    DONE = "done"
    PENDING = "pending"
    FAILED = "failed"
    STALE = "stale"


@dataclass
class CellState:
    state: State
    reason: str = ""
    wall_time_s: Optional[float] = None  # recorded by its result (a stale one's: what a rerun may cost)
    device: str = ""  # where it ran

    @property
    def runnable(self) -> bool:
        return self.state is not State.DONE


# ------------------------------------------------------------------------------------------------ paths
def sweep_dir(ws: Workspace) -> Path:
    """Hidden in the results folder's resume state (the report skips it, git ignores it), or under --runs."""
    return ws.state_dir(ws.results_root) / SWEEP_DIR


def log_path(ws: Workspace, key: str) -> Path:
    return sweep_dir(ws) / "logs" / f"{key}.log"


def failure_path(ws: Workspace, key: str) -> Path:
    return sweep_dir(ws) / "failed" / f"{key}.json"


def lama_dir(ws: Workspace, group: Group) -> Path:
    """The run folder of a LAMA group (its summary.json)."""
    from repro.experiment.lama import output_dir

    return output_dir(ws.results_root, group.backbone_name, group.config())


def lama_seed_dir(ws: Workspace, group: Group) -> Path:
    """Where a LAMA group's relation files are: its seed's folder in the run folder."""
    from repro.experiment.lama import seed_folder

    return seed_folder(lama_dir(ws, group), group.config().seed)


def superglue_result(ws: Workspace, group: Group, task: Optional[str] = None) -> Path:
    from repro.experiment.superglue import output_dir

    return output_dir(ws.results_root, group.backbone_name, group.config()) / f"{task or group.kwargs['task']}.json"


# ------------------------------------------------------------------------------------------------ states
def cell_state(cell: Cell, ws: Workspace) -> CellState:
    """The cell's state (see the module docstring)."""
    found = _lama_state(cell, ws) if cell.benchmark == "lama" else _superglue_state(cell, ws)
    if found.state is State.DONE:
        return found
    failure = read_json(failure_path(ws, cell.key))
    if failure is not None:
        return CellState(State.FAILED, failure.get("error", "failed"), found.wall_time_s)
    return found


@lru_cache(maxsize=8)
def _relations(root: Path) -> dict[str, Any]:
    from repro.tasks import lama as lama_data

    return {r.id: r for r in lama_data.get_relations(root)}


def _lama_state(cell: Cell, ws: Workspace) -> CellState:
    from repro.data import data_root
    from repro.experiment.engine import ReuseLog
    from repro.experiment.lama import relation_fields
    from repro.results import LAMA_RELATION_SCHEMA

    config = cell.config()
    path = lama_seed_dir(ws, cell.group) / f"{cell.unit}.json"
    old = read_json(path)
    if not config.backbone_kind and old is not None:  # a hub backbone of unknown kind: its file says which
        config.backbone_kind = (old.get("config") or {}).get("backbone_kind", "")
    root = data_root(ws.root)
    fields = relation_fields(ws, root, config, _relations(root)[cell.unit])
    log = ReuseLog("relation", path.parent)
    done = log.finished(cell.unit, path, fields, "config_fingerprint", LAMA_RELATION_SCHEMA)
    if done is not None:
        return CellState(State.DONE, "", done.get("wall_time_s"), _device(done))
    if log.recomputed:
        return CellState(State.STALE, next(iter(log.recomputed)), (old or {}).get("wall_time_s"), _device(old or {}))
    return CellState(State.PENDING)


def _superglue_state(cell: Cell, ws: Workspace) -> CellState:
    from repro.experiment import superglue as sg
    from repro.experiment.engine import keyed_fields, keyed_path, other_keyed
    from repro.experiment.fingerprints import differences, fields_fingerprint
    from repro.tasks.registry import get_task

    config, group = cell.config(), cell.group
    train_task = get_task(config.train_task)
    fields = _superglue_fields(ws, config)
    fingerprint = fields_fingerprint(fields)
    base = sg.resume_base(ws, group.backbone_name, config)
    once = config.choices.seed_rule == "once"
    variants, searched = _variants(config, train_task, group.kind)
    reusable = _searched_reusable if searched else _reusable
    records = [reusable(keyed_path(base, fields), variants, seed, fingerprint, once) for seed in cell.seeds]
    if all(r is not None for r in records):
        walls = [r.get("wall_time_s") for r in records]
        return CellState(State.DONE, "", sum(walls) if None not in walls else None, _device(records[0]))
    for other in other_keyed(base, fields):  # a resume folder of other settings: the driver sets it aside
        names = () if searched else variants  # other settings may search other patterns: any folder
        found = [p for seed in cell.seeds for v in names or ("*",) for p in (other / v).glob(f"seed{seed}.json")]
        if found:
            old = read_json(found[0]) or {}
            reason = differences(keyed_fields(other), fields)
            return CellState(State.STALE, reason, old.get("wall_time_s"), _device(old))
    result = read_json(superglue_result(ws, group))
    if result is None or not set(map(str, cell.seeds)) <= set(result.get("seeds", {})):
        return CellState(State.PENDING)
    wall = _seed_wall(result, cell.seeds)
    if result.get("fingerprint") == fingerprint:
        return CellState(State.STALE, f"in {superglue_result(ws, group).name}, but its seed record is gone from "
                         f"{keyed_path(base, fields)}: a rerun recomputes it", wall, _device(result))
    return CellState(State.STALE, differences(result.get("fingerprint_fields"), fields), wall, _device(result))


def _superglue_fields(ws: Workspace, config) -> dict[str, Any]:
    """What decides the run's seeds' numbers (its resume folder's key), as `run_superglue` computes it."""
    from repro.experiment.superglue import run_fields
    from repro.tasks.registry import get_task

    train_task = get_task(config.train_task)
    return run_fields(ws, config, train_task, [train_task] + [get_task(n) for n in train_task.diagnostics])


def _variants(config, train_task, kind: str) -> tuple[tuple[str, ...], bool]:
    """The pattern folder(s) a run keeps its seeds in, and whether a seed needs every one of them: the patterns a
    supervised P-tuning run searches on dev (True), else its one pattern, or () when unknown here (a hub backbone
    of unknown kind: any folder will do)."""
    from repro.experiment.superglue import RunPlan, default_variant, search_variants, searches_patterns

    if config.pattern:
        return (config.pattern,), False
    plan = RunPlan(config, train_task, [], config.method_entry, None, list(config.seeds))
    if searches_patterns(plan):
        return search_variants(plan), True
    if not kind:
        return (), False
    return (default_variant(train_task, config.method_entry.style.value, causal=kind == "causal"),), False


def _searched_reusable(runs_dir: Path, searched: Sequence[str], seed: int, fingerprint: str,
                       once: bool) -> Optional[dict]:
    """A searched seed is done when every searched pattern has it (the search picks among them all); its
    record then carries their summed wall time."""
    from repro.experiment.superglue import seed_reusable

    found = [seed_reusable(runs_dir, v, seed, fingerprint, once) for v in searched]
    if any(r is None for r in found):
        return None
    walls = [r.get("wall_time_s") for r in found]
    return {**found[0], "wall_time_s": sum(walls) if None not in walls else None}


def _reusable(runs_dir: Path, variants: Sequence[str], seed: int, fingerprint: str, once: bool) -> Optional[dict]:
    from repro.experiment.superglue import seed_reusable

    names = variants or sorted(p.name for p in runs_dir.glob("*") if p.is_dir())
    return next((r for v in names if (r := seed_reusable(runs_dir, v, seed, fingerprint, once)) is not None), None)


def _seed_wall(result: dict[str, Any], seeds: Sequence[int]) -> Optional[float]:
    """The seeds' recorded wall time in a task result: per seed where recorded, else the run's share."""
    per_seed = result.get("seed_wall_time_s") or {}
    if all(per_seed.get(str(s)) is not None for s in seeds):
        return sum(per_seed[str(s)] for s in seeds)
    wall = result.get("wall_time_s")
    return None if wall is None else wall * len(seeds) / max(1, len(result.get("seeds", {})))


def _device(data: dict[str, Any]) -> str:
    env = data.get("environment") or {}
    device = env.get("device") or (data.get("fingerprint_fields") or {}).get("device", "")
    cpu = env.get("cpu_model") or data.get("cpu_model")
    return f"{device} ({cpu})" if device == "cpu" and cpu else device


def assembled(group: Group, ws: Workspace, states: Optional[Sequence[CellState]] = None) -> bool:
    """Whether the run's summary files hold every unit of the group with the numbers a rerun would reuse
    (`states`: the group's cell states, when known)."""
    states = states if states is not None else [cell_state(c, ws) for c in group.cells()]
    if any(st.state is not State.DONE for st in states):
        return False
    if group.benchmark == "lama":
        summary = read_json(lama_dir(ws, group) / "summary.json") or {}
        listed = summary.get("relations") or {}
        seed = str(group.config().seed)
        for rid in group.units:
            data = read_json(lama_seed_dir(ws, group) / f"{rid}.json") or {}
            entry = listed.get(rid) or {}
            if rid not in listed or (entry.get("seeds") or {seed: entry.get("p_at_1")}).get(seed) != data.get("p_at_1"):
                return False
        return True
    from repro.experiment.fingerprints import fields_fingerprint
    from repro.tasks.registry import get_task

    config = group.config()
    fingerprint = fields_fingerprint(_superglue_fields(ws, config))
    seeds = {str(s) for unit in group.units for s in (unit if isinstance(unit, tuple) else (unit,))}
    for task in [config.train_task, *get_task(config.train_task).diagnostics]:
        data = read_json(superglue_result(ws, group, task))
        if data is None or data.get("fingerprint") != fingerprint or not seeds <= set(data.get("seeds", {})):
            return False
    return True


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
