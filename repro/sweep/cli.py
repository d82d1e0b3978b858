"""`python -m repro sweep [SPEC] [--plan | --run] [--engine local|ray]`: many runs as one command.

    python -m repro sweep sweeps/cpu_lama.yaml --plan              # every cell and its state, no run
    python -m repro sweep sweeps/cpu_lama.yaml --run               # the cells not done, here, one at a time
    python -m repro sweep sweeps/table2.yaml --run --engine ray --address auto --gpus-per-cell 1 --device cuda
    python -m repro sweep --benchmark superglue --tasks cb,rte --methods ptuning --seeds 3 --plan

The spec's keys can be given as flags (`--backbones`, `--methods`, ..., `--set FIELD=VALUE` for a config field,
`--train FIELD=VALUE` for a training field); flags override the file's top-level keys.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional, Sequence

from repro.errors import ConfigError
from repro.sweep.spec import LIST_KEYS

PLAN_MARKS = {"done": "done", "pending": "pending", "failed": "FAILED", "stale": "stale"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from repro.cli import add_dataclass_arguments
    from repro.experiment.engine import Workspace
    from repro.sweep.executors import ENGINES

    p = subparsers.add_parser("sweep", help="many runs (a paper table) as cells, locally or on a Ray cluster",
                              description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="?", type=Path, help="a YAML sweep spec (sweeps/*.yaml); optional with flags")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--plan", action="store_true", help="list every cell and its state (the default)")
    action.add_argument("--run", action="store_true", help="run the cells that are not done, then assemble")
    p.add_argument("--brief", action="store_true", help="--plan: one line per group, not per cell")
    axes = p.add_argument_group("spec keys as flags (override the file's)")
    axes.add_argument("--benchmark", help="lama | superglue")
    for key in LIST_KEYS:
        axes.add_argument(f"--{key}", dest=key, metavar="A,B", help=f"comma-separated {key}")
    axes.add_argument("--set", dest="config_items", action="append", default=[], metavar="FIELD=VALUE",
                      help="a config field for every run (YAML value), repeatable")
    axes.add_argument("--train", dest="train_items", action="append", default=[], metavar="FIELD=VALUE",
                      help="a training field for every run (YAML value), repeatable")
    engine = p.add_argument_group("executor")
    engine.add_argument("--engine", default="local", choices=ENGINES,
                        help="local: in this process, one cell at a time; ray: one Ray task per cell")
    engine.add_argument("--address", default=None, help="ray: the cluster (auto, HOST:PORT; default: a local one)")
    engine.add_argument("--cpus-per-cell", type=float, default=1, help="ray: CPUs each cell asks for (default 1)")
    engine.add_argument("--gpus-per-cell", type=float, default=0, help="ray: GPUs each cell asks for (default 0)")
    engine.add_argument("--max-retries", type=int, default=3, help="ray: reruns of a cell whose worker died")
    add_dataclass_arguments(p.add_argument_group("run options (every cell)"), Workspace)
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from repro.experiment.engine import Workspace
    from repro.sweep.executors import cell_where

    values = vars(args)
    where = {k: values[k] for k in ("root", "results_root", "runs_root", "device", "threads", "quiet") if k in values}
    where = cell_where(where, args.engine, args.cpus_per_cell)
    ws = Workspace(**where)
    groups = load_groups(args.spec, flag_overrides(args), ws)
    if not args.run:
        print(format_plan(groups, ws, brief=args.brief))
        return 0
    return run(groups, where, engine=args.engine, address=args.address, cpus=args.cpus_per_cell,
               gpus=args.gpus_per_cell, max_retries=args.max_retries)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.benchmark:
        overrides["benchmark"] = args.benchmark
    for key in LIST_KEYS:
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    for key, items in (("config", args.config_items), ("train", args.train_items)):
        if items:
            overrides[key] = parse_items(items)
    return overrides


def parse_items(items: Sequence[str]) -> dict[str, Any]:
    """FIELD=VALUE pairs, each value read as YAML (3 -> int, null -> None, [a, b] -> list)."""
    import yaml

    from repro.cli import parse_options

    pairs = parse_options(items, "--set and --train")
    return {key: yaml.safe_load(value) if value else "" for key, value in pairs.items()}


def load_groups(spec: Optional[Path], overrides: dict[str, Any], ws) -> list:
    """The spec (file, then flags) checked and expanded into groups, before anything runs."""
    from repro.sweep.cells import expand
    from repro.sweep.spec import parse_spec, read_spec

    data = read_spec(spec)
    for key in ("config", "train"):  # a flag sets one field, the file's others stay
        if key in overrides:
            overrides[key] = {**(data.get(key) or {}), **overrides[key]}
    if not data and not overrides:
        raise ConfigError("give a sweep spec file (sweeps/*.yaml) or its keys as flags (--benchmark ...)")
    benchmark = overrides.get("benchmark", data.get("benchmark"))
    relation_ids = _relation_ids(ws) if benchmark == "lama" else None
    return expand(parse_spec(data, overrides=overrides, relation_ids=relation_ids), relation_ids)


def _relation_ids(ws) -> list[str]:
    from repro.data import data_root
    from repro.tasks import lama as lama_data

    return [r.id for r in lama_data.load_relations(data_root(ws.root))]


# ---------------------------------------------------------------------------------------------- the plan
def format_plan(groups: Sequence, ws, *, brief: bool = False) -> str:
    """Every cell and its state, a line per group with its counts, totals and a device-time estimate."""
    from repro.sweep.state import assembled, cell_state

    lines: list[str] = []
    totals: dict[str, int] = {}
    walls: dict[str, list[float]] = {}  # group key -> recorded wall times of its cells (done, or stale: a rerun's)
    recorded: list[float] = []  # of the done cells
    left: dict[str, int] = {}  # group key -> cells not done
    devices: set[str] = set()
    for group in groups:
        states = [(cell, cell_state(cell, ws)) for cell in group.cells()]
        counts: dict[str, int] = {}
        for _, st in states:
            counts[st.state.value] = counts.get(st.state.value, 0) + 1
            totals[st.state.value] = totals.get(st.state.value, 0) + 1
        walls[group.key] = [st.wall_time_s for _, st in states if st.wall_time_s is not None]
        recorded += [st.wall_time_s for _, st in states if st.wall_time_s is not None and not st.runnable]
        devices |= {st.device for _, st in states if st.device}
        left[group.key] = sum(1 for _, st in states if st.runnable)
        summary = ("summary up to date" if assembled(group, ws, [st for _, st in states]) else
                   "summary due" if not left[group.key] else "summary after its cells")
        lines.append(f"{group.key}  ({group.describe()}): {len(states)} cells: {_counts(counts)}; {summary}")
        if not brief:
            for cell, st in states:
                wall = f"{st.wall_time_s:8.1f} s" if st.wall_time_s is not None else ""
                reason = f"  {st.reason}" if st.reason else ""
                lines.append(f"  {PLAN_MARKS[st.state.value]:<8}{cell.name:<18}{wall}{reason}")
    n_cells = sum(totals.values())
    head = [f"sweep: {len(groups)} runs, {n_cells} cells: {_counts(totals)}"]
    if recorded:
        head.append(f"recorded wall time of {len(recorded)} done cells: {sum(recorded) / 3600:.2f} device-hours"
                    + (f" on {', '.join(sorted(devices))}" if devices else ""))
    head += _estimate(groups, walls, left)
    return "\n".join(head + lines)


def _estimate(groups: Sequence, walls: dict[str, list[float]], left: dict[str, int]) -> list[str]:
    """Device-hours for the cells left: each at the mean recorded wall time of its run's cells (done ones, and
    stale ones: their last computation), else of the same benchmark, backbone and method (relations and tasks
    differ ~10x in cost)."""
    family: dict[tuple, list[float]] = {}
    for group in groups:
        family.setdefault(_family(group), []).extend(walls[group.key])
    seconds, unknown = 0.0, 0
    for group in groups:
        known = walls[group.key] or family[_family(group)]
        if known:
            seconds += left[group.key] * sum(known) / len(known)
        else:
            unknown += left[group.key]
    n_left = sum(left.values())
    if not n_left:
        return []
    if unknown == n_left:
        return [f"no estimate for the {n_left} cells left: no recorded cell of the same backbone and method yet "
                "(run a few, then --plan again)"]
    text = (f"estimate for the {n_left - unknown} cells left with a recorded cell of the same run (or backbone and "
            f"method): {seconds / 3600:.2f} device-hours on the same device")
    return [text + (f"; {unknown} more cells have no estimate" if unknown else "")]


def _family(group) -> tuple:
    return group.benchmark, group.backbone_name, group.kwargs["method"]


def _counts(counts: dict[str, int]) -> str:
    order = ("done", "pending", "failed", "stale")
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))


# ------------------------------------------------------------------------------------------------ running
def run(groups: Sequence, where: dict[str, Any], *, engine: str = "local", address: Optional[str] = None,
        cpus: float = 1, gpus: float = 0, max_retries: int = 3, quiet: bool = False) -> int:
    """Run the sweep's cells with the chosen executor; print what ran and failed. Exit status 1 on a failure."""
    from repro.sweep.executors import make_executor, run_sweep
    from repro.sweep.state import log_path
    from repro.experiment.engine import Workspace

    from repro.sweep.executors import cell_where

    where = cell_where(where, engine, cpus)
    options = {} if engine == "local" else dict(address=address, cpus=cpus, gpus=gpus, max_retries=max_retries)
    executor = make_executor(engine, where, **options)
    report = run_sweep(groups, executor, where, quiet=quiet)
    ws = Workspace(**where)
    print(f"ran {len(report.ran)} cells ({len(report.failed)} failed), assembled {len(report.assembled)} runs")
    for outcome in report.failed:
        print(f"  FAILED {outcome.key}: {outcome.error} (log: {log_path(ws, outcome.key)})")
    return 1 if report.failed else 0
