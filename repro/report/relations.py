"""The per-relation LAMA table: P@1 of each method per T-REx relation, with the facts kept and dropped.

`relation_grid` lays the table out once (relation order, which relations are partial or skipped, the
macro and micro rows, the macro over the relations every method evaluated); the report's markdown
(`relation_markdown`), its CSV (`tables.relation_frame`) and the terminal table of `python -m repro
lama-table` (`relation_text`) only render that grid, so they cannot disagree on a number or a mark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from repro.report.names import method_rank, method_to_paper
from repro.report.results import RelationResult, Result
from repro.report.text import DASH, md_row, number, slug

TOTALS = ("macro", "micro")  # the summary rows every rendering shows
TOTAL_KEYS = {"macro": "macro_p_at_1", "micro": "micro_p_at_1"}
TEXT_WIDTH = 11  # one method's column in the terminal table


@dataclass
class RelationTable:
    """Per-relation LAMA P@1 of one backbone and vocabulary, one result per method."""

    backbone: str
    vocab: str
    by_method: dict[str, Result]

    @property
    def key(self) -> str:
        return f"lama_relations_{slug(self.backbone)}_{self.vocab}"

    @property
    def methods(self) -> list[str]:
        return sorted(self.by_method, key=method_rank)

    def relations(self) -> list[str]:
        names = {r.relation for res in self.by_method.values() for r in res.relations}
        return sorted(names, key=_relation_order)


@dataclass(frozen=True)
class RelationLine:
    """One relation: P@1 per method (None: not evaluated), the facts kept/dropped ("a/b" when methods differ)."""

    relation: str
    scores: tuple[Optional[float], ...]
    kept: str
    dropped: str
    partial: bool


@dataclass(frozen=True)
class RelationGrid:
    """The laid-out table: methods (columns), one line per relation, summary rows and the footnotes."""

    methods: tuple[str, ...]
    lines: tuple[RelationLine, ...]
    totals: dict[str, tuple[Optional[float], ...]]  # "macro", "micro", and "same" when methods differ in coverage
    same_relations: int  # how many relations the "same" row averages over (0: no such row)
    partial: dict[str, str]  # relation -> why its test set is partial
    skipped: dict[str, str]  # "P190 (MP)" -> why the method did not evaluate it

    @property
    def has_diff(self) -> bool:
        """A P-tuning − MP column: the comparison the paper makes, shown where both methods ran."""
        return "mp" in self.methods and "ptuning" in self.methods

    def diff(self, values: tuple[Optional[float], ...]) -> Optional[str]:
        """P-tuning − MP of one row (None: the table has no such column)."""
        if not self.has_diff:
            return None
        mp, pt = values[self.methods.index("mp")], values[self.methods.index("ptuning")]
        return f"{pt - mp:+.1f}" if mp is not None and pt is not None else DASH


def relation_tables(results: list[Result]) -> list[RelationTable]:
    """One table per (backbone, vocabulary) of the LAMA results that carry relations (first result per method)."""
    groups: dict[tuple[str, str], dict[str, Result]] = {}
    for r in results:
        if r.kind == "lama" and r.relations:
            groups.setdefault((r.backbone, r.setting), {}).setdefault(r.method, r)
    return [RelationTable(b, v, m) for (b, v), m in sorted(groups.items())]


def method_name(method: str) -> str:
    """The paper's name of a LAMA method (ours where the paper has none)."""
    return method_to_paper("lama").get(method, method)


def relation_grid(table: RelationTable) -> RelationGrid:
    """The one layout of the per-relation table, from the report's parsed results."""
    methods = tuple(table.methods)
    lines: list[RelationLine] = []
    partial: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in table.relations():
        per = {m: relation_of(table.by_method[m], name) for m in methods}
        found = [r for r in per.values() if r is not None]
        reasons = [r.partial_reason or "partial test set" for r in found if r.partial]
        if reasons:
            partial[name] = reasons[0]
        skipped.update({f"{name} ({method_name(m)})": r.skipped for m, r in per.items() if r is not None and r.skipped})
        scores = tuple(r.p_at_1 if r is not None else None for r in per.values())
        lines.append(RelationLine(name, scores, _joined(r.kept for r in found), _joined(r.dropped for r in found),
                                  bool(reasons)))
    totals = {name: tuple(table.by_method[m].metrics.get(TOTAL_KEYS[name]) for m in methods) for name in TOTALS}
    same = _same_relations(lines, len(methods))
    if same:
        totals["same"] = tuple(sum(line.scores[i] for line in same) / len(same) for i in range(len(methods)))
    return RelationGrid(methods, tuple(lines), totals, len(same), partial, skipped)


def _same_relations(lines: list[RelationLine], n_methods: int) -> list[RelationLine]:
    """The relations every method evaluated, where some method evaluated more (P-tuning skips relations it
    cannot train); empty when all methods cover the same relations."""
    common = [line for line in lines if all(s is not None for s in line.scores)]
    coverage = [sum(line.scores[i] is not None for line in lines) for i in range(n_methods)]
    return [] if not common or all(c == len(common) for c in coverage) else common


def relation_markdown(table: RelationTable) -> str:
    """The report's table: paper method names, P-tuning − MP where both ran, kept/dropped, then footnotes."""
    grid = relation_grid(table)
    header = ["Relation"] + [f"{method_name(m)} P@1" for m in grid.methods] + (["P-tuning − MP"] * grid.has_diff)
    lines = [f"## LAMA-{table.vocab} P@1 per relation: {table.backbone}", "",
             "Sources: " + ", ".join(table.by_method[m].display for m in grid.methods), "",
             md_row(header + ["kept", "dropped"]), md_row(["---"] * (len(header) + 2))]
    for line in grid.lines:
        name = line.relation + (" *" if line.partial else "")
        lines.append(md_row([name] + _md_cells(grid, line.scores) + [line.kept, line.dropped]))
    labels = {"macro": "macro (mean over relations)", "micro": "micro (all facts)"}
    lines += [md_row([f"**{labels[t]}**"] + _md_cells(grid, grid.totals[t]) + ["", ""]) for t in TOTALS]
    lines += ["", f"kept/dropped: facts whose object is (not) one token of the {table.vocab} vocabulary; "
              "a/b when methods differ. * partial relation:"]
    lines += [f"- {name}: {reason}" for name, reason in grid.partial.items()] or ["- none"]
    if grid.skipped:
        lines += ["", f"{DASH} not evaluated:"] + [f"- {name}: {reason}" for name, reason in grid.skipped.items()]
    return "\n".join(lines) + "\n"


def _md_cells(grid: RelationGrid, values: tuple[Optional[float], ...]) -> list[str]:
    diff = grid.diff(values)
    return [number(v) for v in values] + ([diff] if diff is not None else [])


def relation_text(table: RelationTable) -> list[str]:
    """The terminal table of `lama-table`: our method names, kept, P@1 per method, macro/micro rows."""
    grid = relation_grid(table)
    head = f"{'relation':<10}{'kept':>6}" + _text_cells(grid.methods)
    lines = [f"LAMA P@1 (%) on {table.backbone}, vocabulary {table.vocab}; * = rebuilt test file (PARTIAL.tsv)", head]
    for line in grid.lines:
        lines.append(f"{line.relation + ('*' if line.partial else ''):<10}{line.kept:>6}"
                     + _text_cells([number(v) for v in line.scores]))
    lines.append("-" * len(head))
    labels = {"macro": "macro", "micro": "micro", "same": f"macro, same {grid.same_relations}"}
    lines += [f"{labels[t]:<16}" + _text_cells([number(v) for v in values]) for t, values in grid.totals.items()]
    lines.append("macro = mean over relations (the paper's tables); micro = over all kept facts; "
                 "'macro, same N' = macro over the relations every method evaluated")
    return lines


def _text_cells(cells: Iterable[str]) -> str:
    return "".join(f"{c:>{TEXT_WIDTH}}" for c in cells)


def relation_of(result: Result, name: str) -> Optional[RelationResult]:
    return next((r for r in result.relations if r.relation == name), None)


def _joined(values: Iterable[Optional[int]]) -> str:
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    return "/".join(str(v) for v in distinct) if distinct else DASH


def _relation_order(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else 0, name)
