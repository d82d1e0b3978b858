"""Render the matched tables as markdown (for people) and CSV (the same content, one line per cell).

A cell reads "ours / paper (ours - paper)". Every mark a reader needs is explained under the table: the
paper value's provenance, partial results with the reason, missing values, the paper row compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from repro.atomic import atomic_write_text
from repro.report.average import avg_tasks
from repro.report.match import Cell, OursValue, Row, TableView
from repro.report.relations import RelationTable, method_name, relation_markdown, relation_of
from repro.report.text import DASH, fmt, md_row, paper_text
CSV_COLUMNS = [
    "table", "paper_table", "method", "our_method", "backbone", "paper_method", "paper_backbone", "compared_with",
    "task", "metric", "ours", "std", "n_seeds", "paper", "delta", "status", "paper_note", "partial",
    "partial_reason", "incomplete", "sources",
]


@dataclass
class Notes:
    """Numbered footnotes of one table: partial results (*1, *2) and paper notes ([a], [b])."""

    partial: dict[str, str] = field(default_factory=dict)
    paper: dict[str, str] = field(default_factory=dict)

    def partial_mark(self, ours: OursValue) -> str:
        marks = []
        for source in ours.sources:
            if source.partial:
                key = source.display
                if key not in self.partial:
                    self.partial[key] = f"*{len(self.partial) + 1}"
                marks.append(self.partial[key])
        return "".join(dict.fromkeys(marks))

    def paper_mark(self, note: str) -> str:
        if note not in self.paper:
            self.paper[note] = f"[{chr(ord('a') + len(self.paper))}]"
        return self.paper[note]


def legend() -> str:
    """The marks under every comparison table (the Avg's task count from the task declarations)."""
    n = len(avg_tasks())
    return ("Marks: † paper value transcribed, not re-checked against the PDF (unmarked: corroborated by an "
            "independent quote); ‡ computed here from the paper's cells (the paper prints no such number); "
            f"{DASH} no value; n/r the paper reports no number (see its note); ±x std over seeds; "
            f"*N partial result (see below); incomplete k/{n}: the Avg needs all {n} tasks.")


def ours_text(ours: Optional[OursValue], notes: Notes) -> str:
    if ours is None:
        return DASH
    if ours.value is None:
        text = ours.incomplete or DASH
    else:
        several = ours.n_seeds is not None and ours.n_seeds > 1
        text = fmt(ours.value) + (f"±{fmt(ours.std)}" if ours.std is not None and several else "")
    mark = notes.partial_mark(ours) if ours.partial else ""
    return f"{text} {mark}" if mark else text


def cell_text(cell: Cell, notes: Notes) -> str:
    text = f"{ours_text(cell.ours, notes)} / {paper_text(cell.paper)}"
    return text + (f" ({cell.delta:+.1f})" if cell.delta is not None else "")


def compared_text(view: TableView, row: Row, notes: Notes) -> str:
    paper_notes = sorted({c.paper.note for c in view.grid[view.rows.index(row)] if c.paper and c.paper.note})
    refs = "".join(notes.paper_mark(n) for n in paper_notes)
    if row.rule == "paper row":
        text = "paper row"
    elif row.same_backbone:
        text = "same backbone"
    elif row.compared:
        text = f"{row.paper_backbone} ({row.rule})"
    else:
        text = row.rule
    return f"{text} {refs}" if refs else text


def view_markdown(view: TableView) -> str:
    """The table in the paper's layout: rows method x backbone, columns tasks."""
    spec = view.spec
    notes = Notes()
    lines = [f"## {spec.title}", ""]
    if spec.paper_table:
        lines.append(f"Paper: {view.version}, {spec.paper_table} ({view.setting}). "
                     "Each cell: ours / paper (ours − paper), in points.")
    else:
        lines.append("Ours only: the paper has no table for this setting.")
    lines += ["", md_row(["Method", "Backbone", "Compared with"] + [c.label for c in view.columns]),
              md_row(["---"] * (3 + len(view.columns)))]
    for row, cells in zip(view.rows, view.grid):
        texts = [cell_text(c, notes) for c in cells]
        lines.append(md_row([row.method, row.backbone, compared_text(view, row, notes)] + texts))
    lines += ["", legend()]
    if notes.paper:
        lines += ["", "Paper notes:"] + [f"- {mark} {note}" for note, mark in notes.paper.items()]
    if notes.partial:
        reasons = {r.display: r.partial_reasons for r in view.results}
        lines += ["", "Partial results:"]
        lines += [f"- {mark} {path}: {'; '.join(reasons.get(path, ()))}" for path, mark in notes.partial.items()]
    return "\n".join(lines) + "\n"


def view_frame(view: TableView) -> pd.DataFrame:
    """One line per cell that has a value on either side; missing sides are empty."""
    records = []
    for row, cells in zip(view.rows, view.grid):
        for cell in cells:
            if cell.ours is None and cell.paper is None:
                continue
            records.append(_record(view, row, cell))
    return _ints(pd.DataFrame.from_records(records, columns=CSV_COLUMNS), "n_seeds")


def _record(view: TableView, row: Row, cell: Cell) -> dict:
    ours, paper = cell.ours, cell.paper
    partial_sources = [s for s in (ours.sources if ours else ()) if s.partial]
    return {
        "table": view.spec.key, "paper_table": view.spec.paper_table or "", "method": row.method,
        "our_method": row.our_method or "", "backbone": row.backbone, "paper_method": row.paper_method or "",
        "paper_backbone": row.paper_backbone or "", "compared_with": row.rule,
        "task": cell.column.task, "metric": cell.column.metric,
        "ours": _round(ours.value if ours else None), "std": _round(ours.std if ours else None),
        "n_seeds": ours.n_seeds if ours else None,
        "paper": _round(paper.value if paper else None), "delta": _round(cell.delta),
        "status": paper.status if paper else "", "paper_note": paper.note if paper else "",
        "partial": ours.partial if ours else None,
        "partial_reason": "; ".join(r for s in partial_sources for r in s.partial_reasons),
        "incomplete": ours.incomplete if ours else "",
        "sources": " ".join(s.display for s in (ours.sources if ours else ())),
    }


def _ints(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Counts stay integers in the CSV even where some are missing."""
    for column in columns:
        frame[column] = frame[column].astype("Int64")
    return frame


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def frame_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


RELATION_CSV_COLUMNS = ["backbone", "vocab", "relation", "method", "paper_method", "p_at_1", "kept", "dropped",
                        "partial", "partial_reason", "skipped", "source"]


def relation_frame(table: RelationTable) -> pd.DataFrame:
    records = []
    for name in table.relations():
        for method in table.methods:
            result = table.by_method[method]
            r = relation_of(result, name)
            if r is None:
                continue
            records.append({"backbone": table.backbone, "vocab": table.vocab, "relation": name, "method": method,
                            "paper_method": method_name(method), "p_at_1": _round(r.p_at_1), "kept": r.kept,
                            "dropped": r.dropped, "partial": r.partial, "partial_reason": r.partial_reason,
                            "skipped": r.skipped, "source": result.display})
    return _ints(pd.DataFrame.from_records(records, columns=RELATION_CSV_COLUMNS), "kept", "dropped")


def write_tables(views: list[TableView], relations: list[RelationTable], out: Path) -> list[Path]:
    """`<key>.md` and `<key>.csv` per table, `comparison.csv` with every table's cells together."""
    written = []
    frames = []
    for view in views:
        frame = view_frame(view)
        frames.append(frame)
        written.append(atomic_write_text(out / f"{view.spec.key}.md", view_markdown(view)))
        written.append(atomic_write_text(out / f"{view.spec.key}.csv", frame_csv(frame)))
    for table in relations:
        written.append(atomic_write_text(out / f"{table.key}.md", relation_markdown(table)))
        written.append(atomic_write_text(out / f"{table.key}.csv", frame_csv(relation_frame(table))))
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CSV_COLUMNS)
    written.append(atomic_write_text(out / "comparison.csv", frame_csv(combined)))
    return written
