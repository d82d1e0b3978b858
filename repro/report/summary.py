"""Counts that answer "how close is my run to the paper, and where not": within tolerance, differ, missing.

Comparisons on the paper's own backbone and comparisons with a nearest paper row (a backbone the paper
did not use) are counted apart: only the first can reproduce a paper cell. Avg cells are left out of the
counts (they restate the task cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.report.match import Cell, Column, Row, TableView, reproducible


@dataclass(frozen=True)
class Comparison:
    table: str
    row: Row
    column: Column
    ours: float
    paper: float
    paper_text: str
    status: str
    partial: bool

    @property
    def delta(self) -> float:
        return self.ours - self.paper

    def within(self, tolerance: float) -> bool:
        return abs(self.delta) <= tolerance + 1e-9

    def describe(self) -> str:
        compared = self.row.backbone if self.row.same_backbone else f"{self.row.backbone} vs {self.row.paper_backbone}"
        flags = [f for f, on in (("ours partial", self.partial), ("paper value transcribed", self.status == "transcribed"))
                 if on]
        return (f"{self.delta:+6.1f}  {self.table} | {self.row.method} | {compared} | {self.column.label}: "
                f"ours {self.ours:.1f}, paper {self.paper_text}" + (f" [{'; '.join(flags)}]" if flags else ""))


@dataclass
class Summary:
    tolerance: float
    same: list[Comparison] = field(default_factory=list)
    nearest: list[Comparison] = field(default_factory=list)
    missing: list[tuple[str, Row, Column]] = field(default_factory=list)
    rows: list[tuple[str, Row]] = field(default_factory=list)

    def within(self, comparisons: list[Comparison]) -> int:
        return sum(c.within(self.tolerance) for c in comparisons)

    def largest_gaps(self, n: int = 5) -> list[Comparison]:
        return sorted(self.same + self.nearest, key=lambda c: (-abs(c.delta), c.table, c.row.label))[:n]


def summarize(views: list[TableView], tolerance: float) -> Summary:
    summary = Summary(tolerance)
    for view in views:
        name = view.spec.paper_table or view.spec.title
        seen_rows: set[Row] = set()
        for cell in view.cells():
            if cell.column.is_avg:
                continue
            if cell.ours is not None and cell.row not in seen_rows:
                seen_rows.add(cell.row)
                summary.rows.append((name, cell.row))
            comparison = _comparison(name, cell)
            if comparison is not None:
                (summary.same if cell.row.same_backbone else summary.nearest).append(comparison)
            elif (cell.ours is None and cell.row.same_backbone and reproducible(view.spec, cell.row)
                  and cell.paper is not None and cell.paper.value is not None):
                summary.missing.append((name, cell.row, cell.column))
    return summary


def _comparison(table: str, cell: Cell) -> Comparison | None:
    if cell.delta is None:
        return None
    assert cell.ours is not None and cell.paper is not None
    return Comparison(table, cell.row, cell.column, cell.ours.value, cell.paper.value, cell.paper.text,
                      cell.paper.status, cell.ours.partial)


def summary_lines(summary: Summary, n_results: int, problems: list[str], warnings: list[str]) -> list[str]:
    """The plain-text summary printed on stdout (and kept in REPRODUCING.md)."""
    tol = f"±{summary.tolerance:g}"
    same, near = summary.same, summary.nearest
    lines = [
        f"Results read: {n_results} file(s); skipped as malformed: {len(problems)}.",
        f"Paper cells a method of ours reproduces (task cells, Tables 2-5): {len(same) + len(summary.missing)}",
        f"  on the paper's own backbone: {summary.within(same)} within {tol} points, "
        f"{len(same) - summary.within(same)} differ, {len(summary.missing)} missing (no result of ours)",
        f"Compared with a nearest paper row (backbones the paper did not use): {len(near)} cell(s), "
        f"{summary.within(near)} within {tol}, {len(near) - summary.within(near)} differ",
    ]
    if summary.rows:
        lines.append("Our rows and the paper row each was compared with:")
        for table, row in summary.rows:
            target = f"paper row {row.paper_method} | {row.paper_backbone}" if row.compared else "no paper row"
            lines.append(f"  {table} | {row.label} -> {target} ({row.rule})")
    gaps = summary.largest_gaps()
    if gaps:
        lines.append("Largest gaps (ours - paper, points):")
        lines.extend(f"  {c.describe()}" for c in gaps)
    lines.extend(f"warning: {w}" for w in warnings)
    lines.extend(f"skipped: {p}" for p in problems)
    return lines
