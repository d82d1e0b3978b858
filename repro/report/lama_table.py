"""`python -m repro lama-table`: our LAMA runs side by side (per relation, macro and micro P@1), next to the
paper's rows of the table that matches the vocabulary. The main job (`scripts/reproduce_lama.sh`) prints this.

A view on the report's own code: the summaries are parsed by `repro.report.results`, the per-relation
table is `relations.relation_grid` rendered for a terminal, and the paper table is the one the report
compares the vocabulary with (`match.lama_spec`: 29k -> Table 2 right, 34k -> Table 2 left, full -> none).
The paper rows shown are those of backbones of our backbone's family (masked or causal); where the table has
none of that family, the row the report's nearest-row rule picks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from repro.errors import DataError
from repro.methods import get_method
from repro.report.match import NEAREST_PAPER_BACKBONE, lama_spec
from repro.report.names import backbone_family, paper_method
from repro.report.paper import PaperTables, load_paper_tables
from repro.report.relations import RelationTable, relation_text
from repro.report.results import read_result
from repro.report.text import DASH, paper_text
from repro.results import PROJECT_ROOT

WIDTH = 11


def load_summaries(results_root: Path, backbone: str, methods: list[str], vocab: str) -> RelationTable:
    """Our runs of `methods` on one backbone and vocabulary, parsed as the report parses them."""
    by_method = {}
    for method in methods:
        get_method(method, "lama")
        path = Path(results_root) / "lama" / backbone / f"{method}-{vocab}" / "summary.json"
        if not path.is_file():
            raise DataError(f"{path}: no summary; run `python -m repro lama --backbone {backbone} --method {method} "
                            f"--vocab {vocab}` first")
        by_method[method] = read_result(path, Path(results_root))
    first = next(iter(by_method.values()), None)
    return RelationTable(first.backbone if first else backbone, vocab, by_method)


def format_table(table: RelationTable, paper: Optional[PaperTables] = None) -> str:
    """The per-relation table, then the paper's rows for the same vocabulary."""
    return "\n".join(relation_text(table) + [""] + paper_lines(table, paper or load_paper_tables()))


def paper_lines(table: RelationTable, paper: PaperTables) -> list[str]:
    """The paper's P@1 for our methods, in the table the report compares this vocabulary with."""
    name = lama_spec(table.vocab).paper_table
    if name is None:
        return [f"The paper has no table for the {table.vocab} vocabulary: nothing to compare with."]
    backbones, which = paper_backbones(table, paper, name)
    methods = table.methods
    rows = {b: [_paper_cell(paper, name, method, b) for method in methods] for b in backbones}
    lines = [f"The paper, {name} (LAMA-{table.vocab}), {which}:", f"{'backbone':<16}" + _cells(methods)]
    lines += [f"{backbone:<16}" + _cells(cells) for backbone, cells in rows.items()]
    lines.append("† transcribed from the paper, not independently corroborated")
    if any("n/r" in cells for cells in rows.values()):
        lines.append("n/r the paper reports no number for this cell")
    return lines


def paper_backbones(table: RelationTable, paper: PaperTables, name: str) -> tuple[list[str], str]:
    """The paper's backbones to show, and how to say which they are: those of our backbone's family; where
    the table has none of it, the nearest row the report compares with; family unknown, all of them."""
    declared = next((r.backbone_kind for r in table.by_method.values() if r.backbone_kind), None)
    family = backbone_family(table.backbone, declared)
    backbones = paper.backbones(name)
    if family is None:
        return backbones, "all rows (the family of our backbone is unknown)"
    same = [b for b in backbones if backbone_family(b) == family]
    if same:
        return same, f"{family} LM rows"
    nearest = NEAREST_PAPER_BACKBONE[name][family]
    return [nearest], f"no {family} LM; its {nearest} row, the report's nearest row"


def _paper_cell(paper: PaperTables, table: str, method: str, backbone: str) -> str:
    pm = paper_method("lama", method)
    return paper_text(paper.get(table, pm, backbone, "LAMA", "P@1")) if pm else DASH


def _cells(cells: list[str]) -> str:
    return "".join(f"{c:>{WIDTH}}" for c in cells)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lama-table", help="our LAMA runs side by side, next to the paper's rows")
    p.add_argument("--backbone", default="smollm2-135m")
    p.add_argument("--methods", default="mp,ptuning", help="comma-separated LAMA methods")
    p.add_argument("--vocab", default="29k")
    p.add_argument("--results", default=str(PROJECT_ROOT / "results"))
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(format_table(load_summaries(Path(args.results), args.backbone, methods, args.vocab)))
    return 0
