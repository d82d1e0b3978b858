"""`python -m repro superglue-table`: one backbone's SuperGLUE results in the paper's layout, one row per method.

`python -m repro superglue-table --setting fewshot --backbone smollm2-135m --methods mp,ptuning`

A view on the report's own code: the result files are parsed by `repro.report.results`, the columns are the
report's SuperGLUE columns (`match.superglue_columns`, from the task declarations: the paper's tasks in
table order, Avg, then the tasks the paper's tables leave out, ReCoRD and the diagnostics, and any task
registered at runtime), each cell is the report's `match.ours_for` and the Avg is `average.superglue_average`.

Cells are `mean ± std` over seeds (`mean` alone for one seed); `†` marks a result evaluated on a subset or
on partial data (its `notes` say which); Avg covers the tasks of the paper's Avg that a row has, `*` when
some are missing from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from repro.errors import ConfigError
from repro.methods import get_method
from repro.report.average import avg_tasks, superglue_average
from repro.report.match import Column, OursValue, ours_for, route, superglue_columns
from repro.report.names import task_display_name, task_of_display
from repro.report.paper import load_paper_tables
from repro.report.results import Result, read_result
from repro.results import RUNS_DIR

MISSING = "-"


def load_results(results_root: Path, setting: str, backbone: str, methods: Sequence[str]) -> dict[str, list[Result]]:
    """method -> its results (sorted by file) under `superglue/<setting>/<backbone>/<method>/`, for the files that exist."""
    root = Path(results_root)
    out: dict[str, list[Result]] = {}
    for method in methods:
        folder = root / "superglue" / setting / backbone / method
        out[method] = [read_result(p, root) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return out


def table_columns(results: dict[str, list[Result]], tasks: Optional[Sequence[str]] = None) -> list[Column]:
    """The report's SuperGLUE columns for the tasks asked for (default: those with results); the columns the
    paper's tables lack only where some result fills them."""
    present = {task_display_name(r.task) for rows in results.values() for r in rows}
    wanted = {task_display_name(t) for t in tasks} if tasks else present
    main, extra = superglue_columns()
    return ([c for c in main if c.is_avg or c.task in wanted]
            + [c for c in extra if c.task in wanted and c.task in present])


def format_table(results: dict[str, list[Result]], tasks: Optional[Sequence[str]] = None) -> str:
    """A markdown table (rows: methods; columns: the tasks present or asked for) with footnotes."""
    columns = table_columns(results, tasks)
    lines = ["| " + " | ".join(["Method"] + [c.label for c in columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    footnotes: list[str] = []
    for method, rows in results.items():
        name = f"{get_method(method, 'superglue').paper_name} ({method})"
        values = {c: _ours(rows, c) for c in columns if not c.is_avg}
        avg, avg_note = _avg(name, values)
        cells = [avg if c.is_avg else _cell(values[c]) for c in columns]
        lines.append("| " + " | ".join([name] + cells) + " |")
        footnotes += [avg_note] if avg_note else []
        shown = {c.task for c in columns}
        footnotes += [f"† {method} {r.task}: {r.partial_reasons[0]}" for r in rows
                      if r.partial and task_display_name(r.task) in shown]
    return "\n".join(lines + ([""] + footnotes if footnotes else []))


def _ours(rows: list[Result], column: Column) -> Optional[OursValue]:
    return next((v for v in (ours_for(r, column) for r in rows) if v is not None), None)


def _cell(ours: Optional[OursValue]) -> str:
    if ours is None or ours.value is None:
        return MISSING
    several = ours.n_seeds is not None and ours.n_seeds > 1 and ours.std is not None
    text = f"{ours.value:.1f} ± {ours.std:.1f}" if several else f"{ours.value:.1f}"
    return text + ("†" if ours.partial else "")


def _avg(name: str, values: dict[Column, Optional[OursValue]]) -> tuple[str, str]:
    """The row's Avg cell and, when tasks of the paper's Avg are missing, the footnote naming them."""
    avg = superglue_average({(c.task, c.metric): v.value for c, v in values.items() if v is not None},
                            allow_missing=True)
    if avg.value is None:
        return MISSING, ""
    if not avg.missing:
        return f"{avg.value:.1f}", ""
    used = [task_of_display(t) for t in avg_tasks() if t not in avg.missing]
    missing = [task_of_display(t) for t in avg.missing]
    return f"{avg.value:.1f}*", f"{name}: Avg over {', '.join(used)} (missing {', '.join(missing)})"


def register(subparsers: argparse._SubParsersAction) -> None:
    """The `superglue-table` subcommand of `repro.cli`."""
    p = subparsers.add_parser("superglue-table", help="SuperGLUE results in the paper's table layout",
                              description=__doc__.splitlines()[0])
    p.add_argument("--setting", default="fewshot", help="fewshot | supervised")
    p.add_argument("--backbone", required=True, help="backbone short name (the results folder)")
    p.add_argument("--methods", default="mp,ptuning", help="comma-separated methods (rows)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: those with results)")
    p.add_argument("--results", default=str(RUNS_DIR),
                   help="results root (default: runs/, where runs write; the committed ones: --results results)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Print the table; a ReproError (unknown method or task, no results) goes to the CLI's handler."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m, "superglue")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    results = load_results(Path(args.results), args.setting, args.backbone, methods)
    first = next((r for rows in results.values() for r in rows), None)
    if first is None:
        raise ConfigError(f"no results under {Path(args.results) / 'superglue' / args.setting / args.backbone}")
    layout = route(first, load_paper_tables()).paper_table
    print(f"SuperGLUE {args.setting}, {args.backbone} (dev set; the paper's {layout} layout)\n")
    print(format_table(results, tasks))
    return 0
