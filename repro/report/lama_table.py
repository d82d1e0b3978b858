"""`python -m repro lama-table`: our LAMA runs side by side (per relation, macro and micro P@1), next to
the paper's GPT rows of Table 2 (LAMA-29k). The main job (`scripts/reproduce_lama.sh`) prints this."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from repro.errors import DataError
from repro.methods import get_method
from repro.report.paper import load_paper_tables
from repro.results import PROJECT_ROOT

PAPER_TABLE = "Table 2 right"  # LAMA-29k, the table with the paper's GPT-2 rows
PAPER_GPT_ROWS = ("gpt2-medium", "gpt2-xl")


def load_summaries(results_root: Path, backbone: str, methods: list[str], vocab: str) -> dict[str, dict[str, Any]]:
    summaries = {}
    for method in methods:
        get_method(method, "lama")
        path = results_root / "lama" / backbone / f"{method}-{vocab}" / "summary.json"
        if not path.is_file():
            raise DataError(f"{path}: no summary; run `python -m repro lama --backbone {backbone} --method {method} "
                            f"--vocab {vocab}` first")
        try:
            summaries[method] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    return summaries


def format_table(summaries: dict[str, dict[str, Any]], backbone: str, vocab: str) -> str:
    methods = list(summaries)
    relation_ids = list(dict.fromkeys(r for s in summaries.values() for r in s["relations"]))
    width = 11
    head = f"{'relation':<10}{'kept':>6}" + "".join(f"{m:>{width}}" for m in methods)
    lines = [f"LAMA P@1 (%) on {backbone}, vocabulary {vocab}; * = rebuilt test file (PARTIAL.tsv)", head]
    for rid in relation_ids:
        entries = [s["relations"].get(rid, {}) for s in summaries.values()]
        kept = next((e["kept"] for e in entries if "kept" in e), 0)
        partial = any(e.get("partial") for e in entries)
        cells = "".join(f"{_cell(e.get('p_at_1')):>{width}}" for e in entries)
        lines.append(f"{rid + ('*' if partial else ''):<10}{kept:>6}{cells}")
    lines.append("-" * len(head))
    for key, label in (("macro_p_at_1", "macro"), ("micro_p_at_1", "micro")):
        lines.append(f"{label:<16}" + "".join(f"{_cell(s.get(key)):>{width}}" for s in summaries.values()))
    common = _common_macro(summaries)
    if common is not None:
        n, values = common
        lines.append(f"{'macro, same ' + str(n):<16}" + "".join(f"{_cell(v):>{width}}" for v in values))
    lines.append("macro = mean over relations (the paper's tables); micro = over all kept facts; "
                 "'macro, same N' = macro over the relations every method evaluated")
    lines.append("")
    lines.append(f"The paper, {PAPER_TABLE} (LAMA-29k), GPT rows:")
    paper = load_paper_tables()
    lines.append(f"{'backbone':<16}" + "".join(f"{m:>{width}}" for m in methods))
    for row_backbone in PAPER_GPT_ROWS:
        cells = []
        for method in methods:
            cell = paper.get(PAPER_TABLE, get_method(method, "lama").paper_name, row_backbone, "LAMA", "P@1")
            cells.append(_cell(cell.value if cell else None) + ("" if cell is None or cell.status == "corroborated" else "†"))
        lines.append(f"{row_backbone:<16}" + "".join(f"{c:>{width}}" for c in cells))
    lines.append("† transcribed from the paper, not independently corroborated")
    return "\n".join(lines)


def _common_macro(summaries: dict[str, dict[str, Any]]):
    """Macro P@1 of each method over the relations all of them evaluated (P-tuning skips untrainable ones)."""
    sets = [{r for r, e in s["relations"].items() if e.get("p_at_1") is not None} for s in summaries.values()]
    common = set.intersection(*sets) if sets else set()
    if not common or all(len(s) == len(common) for s in sets):
        return None
    values = [sum(s["relations"][r]["p_at_1"] for r in common) / len(common) for s in summaries.values()]
    return len(common), values


def _cell(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def register(subparsers) -> None:
    p = subparsers.add_parser("lama-table", help="our LAMA runs side by side, next to the paper's GPT rows")
    p.add_argument("--backbone", default="smollm2-135m")
    p.add_argument("--methods", default="mp,ptuning", help="comma-separated LAMA methods")
    p.add_argument("--vocab", default="29k")
    p.add_argument("--results", default=str(PROJECT_ROOT / "results"))
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(format_table(load_summaries(Path(args.results), args.backbone, methods, args.vocab), args.backbone, args.vocab))
    return 0
