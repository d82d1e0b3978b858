"""Render the matched tables as markdown (for people) and CSV (the same content, one line per cell).

A cell reads "ours / paper (ours - paper)". Every mark a reader needs is explained under the table: the
paper value's provenance, partial results with the reason, missing values, the paper row compared with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from repro.atomic import atomic_write_text
from repro.report.match import Cell, OursValue, PaperValue, Row, TableView
from repro.report.names import method_rank, method_to_paper
from repro.report.results import Result

DASH = "—"
STATUS_MARKS = {"corroborated": "", "transcribed": "†", "computed": "‡"}
LEGEND = (
    "Marks: † paper value transcribed, not re-checked against the PDF (unmarked: corroborated by an "
    "independent quote); ‡ computed here from the paper's cells (the paper prints no such number); "
    f"{DASH} no value; n/r the paper reports no number (see its note); ±x std over seeds; "
    "*N partial result (see below); incomplete k/7: the Avg needs all 7 tasks."
)
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


def fmt(value: float) -> str:
    return f"{value:.1f}"


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


def paper_text(paper: Optional[PaperValue]) -> str:
    if paper is None:
        return DASH
    if paper.value is None:
        return "n/r"
    return paper.text + STATUS_MARKS.get(paper.status, "")


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


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


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
    lines += ["", _md_row(["Method", "Backbone", "Compared with"] + [c.label for c in view.columns]),
              _md_row(["---"] * (3 + len(view.columns)))]
    for row, cells in zip(view.rows, view.grid):
        texts = [cell_text(c, notes) for c in cells]
        lines.append(_md_row([row.method, row.backbone, compared_text(view, row, notes)] + texts))
    lines += ["", LEGEND]
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


def relation_tables(results: list[Result]) -> list[RelationTable]:
    groups: dict[tuple[str, str], dict[str, Result]] = {}
    for r in results:
        if r.kind == "lama" and r.relations:
            groups.setdefault((r.backbone, r.setting), {}).setdefault(r.method, r)
    return [RelationTable(b, v, m) for (b, v), m in sorted(groups.items())]


def method_name(method: str) -> str:
    return method_to_paper("lama").get(method, method)


def relation_markdown(table: RelationTable) -> str:
    """MP vs P-tuning (and any other LAMA method run) per relation, with the facts kept and dropped."""
    methods = table.methods
    diff = "mp" in methods and "ptuning" in methods
    header = ["Relation"] + [f"{method_name(m)} P@1" for m in methods] + (["P-tuning − MP"] if diff else [])
    lines = [f"## LAMA-{table.vocab} P@1 per relation: {table.backbone}", "",
             "Sources: " + ", ".join(table.by_method[m].display for m in methods), "",
             _md_row(header + ["kept", "dropped"]), _md_row(["---"] * (len(header) + 2))]
    partial: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in table.relations():
        per = {m: _relation(table.by_method[m], name) for m in methods}
        for method, r in per.items():
            if r is not None and r.partial:
                partial.setdefault(name, r.partial_reason or "partial test set")
            if r is not None and r.skipped:
                skipped[f"{name} ({method_name(method)})"] = r.skipped
        scores = {m: (r.p_at_1 if r is not None else None) for m, r in per.items()}
        cells = [fmt(v) if v is not None else DASH for v in scores.values()]
        if diff:
            mp, pt = scores["mp"], scores["ptuning"]
            cells.append(f"{pt - mp:+.1f}" if mp is not None and pt is not None else DASH)
        kept = _joined(r.kept for r in per.values() if r)
        dropped = _joined(r.dropped for r in per.values() if r)
        lines.append(_md_row([name + (" *" if name in partial else "")] + cells + [kept, dropped]))
    for label, key in (("macro (mean over relations)", "macro_p_at_1"), ("micro (all facts)", "micro_p_at_1")):
        values = [table.by_method[m].metrics.get(key) for m in methods]
        cells = [fmt(v) if v is not None else DASH for v in values]
        if diff:
            mp, pt = values[methods.index("mp")], values[methods.index("ptuning")]
            cells.append(f"{pt - mp:+.1f}" if mp is not None and pt is not None else DASH)
        lines.append(_md_row([f"**{label}**"] + cells + ["", ""]))
    lines += ["", f"kept/dropped: facts whose object is (not) one token of the {table.vocab} vocabulary; "
              "a/b when methods differ. * partial relation:"]
    lines += [f"- {name}: {reason}" for name, reason in partial.items()] or ["- none"]
    if skipped:
        lines += ["", f"{DASH} not evaluated:"] + [f"- {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


RELATION_CSV_COLUMNS = ["backbone", "vocab", "relation", "method", "paper_method", "p_at_1", "kept", "dropped",
                        "partial", "partial_reason", "skipped", "source"]


def relation_frame(table: RelationTable) -> pd.DataFrame:
    records = []
    for name in table.relations():
        for method in table.methods:
            result = table.by_method[method]
            r = _relation(result, name)
            if r is None:
                continue
            records.append({"backbone": table.backbone, "vocab": table.vocab, "relation": name, "method": method,
                            "paper_method": method_name(method), "p_at_1": _round(r.p_at_1), "kept": r.kept,
                            "dropped": r.dropped, "partial": r.partial, "partial_reason": r.partial_reason,
                            "skipped": r.skipped, "source": result.display})
    return _ints(pd.DataFrame.from_records(records, columns=RELATION_CSV_COLUMNS), "kept", "dropped")


def _relation(result: Result, name: str):
    return next((r for r in result.relations if r.relation == name), None)


def _joined(values) -> str:
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    return "/".join(str(v) for v in distinct) if distinct else DASH


def _relation_order(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else 0, name)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "backbone"


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
