"""SuperGLUE results in the paper's Table 5 layout: one row per method, one column per task metric (CB acc/F1,
MultiRC EM/F1a), then Avg computed the paper's way (`repro.metrics.superglue_avg`: CB and MultiRC first
averaged over their two metrics), then the diagnostics AX-b and AX-g (not part of Avg).

`python -m repro.report.superglue_table --setting fewshot --backbone smollm2-135m --methods mp,ptuning`

Cells are `mean ± std` over seeds (`mean` alone for one seed); `†` marks a result evaluated on a subset or
on partial data (its `notes` say which); Avg covers the paper's seven tasks a row has, `*` when some are
missing from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from repro.errors import ConfigError, ReproError
from repro.methods import get_method
from repro.metrics import superglue_avg
from repro.results import PROJECT_ROOT

# (task, metric, header) in the paper's Table 5 order; ReCoRD is not in the paper's table.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("boolq", "acc", "BoolQ acc"), ("cb", "acc", "CB acc"), ("cb", "f1_macro", "CB F1"), ("wic", "acc", "WiC acc"),
    ("rte", "acc", "RTE acc"), ("multirc", "em", "MultiRC EM"), ("multirc", "f1a", "MultiRC F1a"),
    ("wsc", "acc", "WSC acc"), ("copa", "acc", "COPA acc"), ("record", "em", "ReCoRD EM"), ("record", "f1", "ReCoRD F1"),
)
DIAGNOSTIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("axb", "mcc", "AX-b MCC"), ("axg", "acc", "AX-g acc"), ("axg", "gender_parity", "AX-g parity"),
)
PAPER_AVG_TASKS = ("boolq", "cb", "wic", "rte", "multirc", "wsc", "copa")


def load_results(results_root: Path, setting: str, backbone: str, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """method -> task -> result JSON, for the files that exist."""
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        folder = results_root / "superglue" / setting / backbone / method
        out[method] = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            out[method][path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _cell(result: Optional[dict[str, Any]], metric: str) -> str:
    if result is None or metric not in result.get("mean", {}):
        return "-"
    mean = result["mean"][metric]
    text = f"{mean:.1f}" if len(result.get("seeds", {})) < 2 else f"{mean:.1f} ± {result['std'][metric]:.1f}"
    return text + ("†" if result.get("partial") else "")


def format_table(results: dict[str, dict[str, Any]], tasks: Optional[Sequence[str]] = None) -> str:
    """A markdown table (rows: methods; columns: the tasks present or asked for) with footnotes."""
    present = {t for by_task in results.values() for t in by_task}
    wanted = set(tasks) if tasks else present
    columns = [c for c in COLUMNS if c[0] in wanted]
    diagnostics = [c for c in DIAGNOSTIC_COLUMNS if c[0] in wanted and c[0] in present]
    header = ["Method"] + [c[2] for c in columns] + ["Avg"] + [c[2] for c in diagnostics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes: list[str] = []
    for method, by_task in results.items():
        name = f"{get_method(method, "superglue").paper_name} ({method})"
        row = [name] + [_cell(by_task.get(t), m) for t, m, _ in columns]
        avg_tasks = [t for t in PAPER_AVG_TASKS if t in by_task and (not tasks or t in wanted)]
        if avg_tasks:
            avg = superglue_avg({t: by_task[t]["mean"] for t in avg_tasks})
            missing = [t for t in PAPER_AVG_TASKS if t not in avg_tasks]
            row.append(f"{avg:.1f}" + ("*" if missing else ""))
            if missing:
                footnotes.append(f"{name}: Avg over {', '.join(avg_tasks)} (missing {', '.join(missing)})")
        else:
            row.append("-")
        row += [_cell(by_task.get(t), m) for t, m, _ in diagnostics]
        lines.append("| " + " | ".join(row) + " |")
        for task, result in by_task.items():
            if result.get("partial") and (task in wanted):
                footnotes.append(f"† {method} {task}: {(result.get('notes') or ['partial'])[0]}")
    if footnotes:
        lines += [""] + footnotes
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", default="fewshot", help="fewshot | supervised")
    p.add_argument("--backbone", required=True, help="backbone short name (the results folder)")
    p.add_argument("--methods", default="mp,ptuning", help="comma-separated methods (rows)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: those with results)")
    p.add_argument("--results", default=str(PROJECT_ROOT / "results"), help="results root")


def register(subparsers) -> None:
    """A `superglue-table` subcommand for `repro.cli` (same arguments as this module's own CLI)."""
    p = subparsers.add_parser("superglue-table", help="SuperGLUE results in the paper's Table 5 layout",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Print the table; a ReproError (unknown method, no results) propagates to the caller's handler."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m, "superglue")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    results = load_results(Path(args.results), args.setting, args.backbone, methods)
    if not any(results.values()):
        raise ConfigError(f"no results under {Path(args.results) / 'superglue' / args.setting / args.backbone}")
    print(f"SuperGLUE {args.setting}, {args.backbone} (dev set; the paper's Table 5 layout)\n")
    print(format_table(results, tasks))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m repro.report.superglue_table", description=__doc__.splitlines()[0])
    add_arguments(p)
    try:
        return run_cli(p.parse_args(argv))
    except ReproError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
