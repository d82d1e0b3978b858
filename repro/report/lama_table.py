"""`python -m repro lama-table`: our LAMA runs side by side (per relation, macro and micro P@1), next to the
paper's rows of the table that matches the vocabulary. With `--reference DIR` (the main job,
`scripts/reproduce_lama.sh`, passes the committed results/), each method shows three columns: ours now | the
committed reference | the paper (macro row only: the paper gives no per-relation numbers).

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
from repro.report.relations import TOTAL_KEYS, RelationTable, method_name, relation_grid, relation_text
from repro.report.results import read_result
from repro.report.text import DASH, number, paper_text
from repro.results import REFERENCE_DIR, RUNS_DIR

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


def load_reference(results_root: Path, backbone: str, methods: list[str], vocab: str) -> Optional[RelationTable]:
    """The reference summaries of `methods` that exist under `results_root` (None: none does)."""
    have = [m for m in methods if (Path(results_root) / "lama" / backbone / f"{m}-{vocab}" / "summary.json").is_file()]
    return load_summaries(results_root, backbone, have, vocab) if have else None


def comparison_lines(ours: RelationTable, reference: Optional[RelationTable], paper: PaperTables,
                     labels: tuple[str, str] = ("runs/", "results/")) -> list[str]:
    """Per relation and method: ours now | committed reference | paper; the macro and micro rows. The paper
    column holds the paper's macro P@1 of the first row of our backbone's family (`paper_backbones`)."""
    grid = relation_grid(ours)
    ref = relation_grid(reference) if reference is not None else None
    name = lama_spec(ours.vocab).paper_table
    paper_row = paper_backbones(ours, paper, name)[0][0] if name else None

    def ref_value(method: str, relation: Optional[str] = None, total: Optional[str] = None) -> str:
        if ref is None or method not in ref.methods:
            return DASH
        at = ref.methods.index(method)
        if total is not None:
            values = ref.totals.get(total)
            if not values:
                return DASH
            result = reference.by_method[method]
            spread = result.std.get(TOTAL_KEYS.get(total, "")) if result.n_seeds > 1 else None
            return number(values[at]) + (f"±{number(spread)}" if spread is not None else "")
        line = next((x for x in ref.lines if x.relation == relation), None)
        return number(line.scores[at]) if line is not None else DASH

    head = f"{'':<16}" + "".join(f"{method_name(m):^{3 * WIDTH}}" for m in grid.methods)
    sub = f"{'relation':<10}{'kept':>6}" + _cells(["ours", "reference", "paper"] * len(grid.methods))
    lines = [f"LAMA P@1 (%) on {ours.backbone}, vocabulary {ours.vocab}: ours now ({labels[0]}) | committed "
             f"reference ({labels[1]}) | paper ({name or 'no table'}, {paper_row or DASH}); * = rebuilt test file",
             head, sub]
    for line in grid.lines:
        cells = []
        for i, m in enumerate(grid.methods):
            cells += [number(line.scores[i]), ref_value(m, relation=line.relation), DASH]
        lines.append(f"{line.relation + ('*' if line.partial else ''):<10}{line.kept:>6}" + _cells(cells))
    lines.append("-" * len(sub))
    for total in ("macro", "micro"):
        cells = []
        for i, m in enumerate(grid.methods):
            theirs = _paper_cell(paper, name, m, paper_row) if name and paper_row and total == "macro" else DASH
            cells += [number(grid.totals[total][i]), ref_value(m, total=total), theirs]
        lines.append(f"{total:<16}" + _cells(cells))
    if reference is None:
        lines.append(f"{DASH} reference: no committed result for this backbone and vocabulary under {labels[1]}")
    else:
        lines += [f"reference {method_name(m)}: mean over seeds {', '.join(r.seed_metrics)} (± their std); "
                  "per relation the mean" for m, r in reference.by_method.items() if r.n_seeds > 1]
    return lines


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
    p.add_argument("--results", default=str(RUNS_DIR),
                   help="our runs (default: runs/, where runs write; the committed ones: --results results)")
    p.add_argument("--reference", nargs="?", const=str(REFERENCE_DIR), default=None,
                   help="also show a reference folder's numbers per cell (no value: the committed results/)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    ours = load_summaries(Path(args.results), args.backbone, methods, args.vocab)
    if args.reference is None:
        print(format_table(ours))
        return 0
    reference = load_reference(Path(args.reference), args.backbone, methods, args.vocab)
    paper = load_paper_tables()
    print("\n".join(comparison_lines(ours, reference, paper, (args.results, args.reference))
                    + [""] + paper_lines(ours, paper)))
    return 0
