"""The paper's tables as data: load and validate `paper_tables.csv` (shipped with the package).

Each cell keeps its provenance (`status`: corroborated or transcribed, and a free-text note) because every
comparison the report prints must say how far the paper number itself was checked. Errors name
`file:line: field` so a bad edit of the CSV is found at once.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

from repro.errors import DataError

COLUMNS = ("table", "version", "setting", "backbone", "method", "task", "metric", "value", "status", "note")
REQUIRED = ("table", "version", "setting", "backbone", "method", "task", "metric", "status")
STATUSES = ("corroborated", "transcribed")
KNOWN_TABLES = ("Table 1", "Table 2 left", "Table 2 right", "Table 3", "Table 4", "Table 5")
SHIPPED = "paper_tables.csv"


@dataclass(frozen=True)
class PaperCell:
    """One number of the paper (or a cell the paper left empty, with a note saying why)."""

    table: str
    version: str
    setting: str
    backbone: str
    method: str
    task: str
    metric: str
    value: Optional[float]
    text: str
    status: str
    note: str
    line: int

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.table, self.method, self.backbone, self.task, self.metric)


class PaperTables:
    """All cells, indexed by (table, method, backbone, task, metric), in file order."""

    def __init__(self, cells: Iterable[PaperCell], source: str = SHIPPED):
        self.cells: list[PaperCell] = list(cells)
        self.source = source
        self._by_key = {c.key: c for c in self.cells}
        self._rows: dict[str, list[tuple[str, str]]] = {}
        for c in self.cells:
            rows = self._rows.setdefault(c.table, [])
            if (c.method, c.backbone) not in rows:
                rows.append((c.method, c.backbone))

    def get(self, table: str, method: str, backbone: str, task: str, metric: str) -> Optional[PaperCell]:
        return self._by_key.get((table, method, backbone, task, metric))

    def in_table(self, table: str) -> list[PaperCell]:
        return [c for c in self.cells if c.table == table]

    def rows(self, table: str) -> list[tuple[str, str]]:
        """(method, backbone) rows of a table, in the paper's order."""
        return list(self._rows.get(table, []))

    def has_row(self, table: str, method: str, backbone: str) -> bool:
        return (method, backbone) in self._rows.get(table, [])

    def backbones(self, table: str) -> list[str]:
        return list(dict.fromkeys(c.backbone for c in self.in_table(table)))

    def setting(self, table: str) -> str:
        """The table's setting text (the most common one; a few cells refine it)."""
        settings = [c.setting for c in self.in_table(table)]
        return max(dict.fromkeys(settings), key=settings.count) if settings else ""


def shipped_path() -> Path:
    return Path(str(resources.files("repro.report").joinpath(SHIPPED)))


def load_paper_tables(path: Optional[Path] = None) -> PaperTables:
    """Read and validate the paper table CSV (the shipped copy when `path` is None)."""
    path = Path(path) if path is not None else shipped_path()
    if not path.is_file():
        raise DataError(f"{path}: paper table file not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
        cells: list[PaperCell] = []
        seen: dict[tuple[str, ...], int] = {}
        for row in reader:
            cell = _parse_row(path, reader.line_num, row)
            if cell.key in seen:
                raise DataError(f"{path}:{cell.line}: duplicate cell {cell.key} (first at line {seen[cell.key]})")
            seen[cell.key] = cell.line
            cells.append(cell)
    if not cells:
        raise DataError(f"{path}: no cells")
    return PaperTables(cells, source=str(path))


def _parse_row(path: Path, line: int, row: dict[str, Optional[str]]) -> PaperCell:
    if None in row:
        raise DataError(f"{path}:{line}: more fields than the {len(COLUMNS)} columns")
    fields = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for name in REQUIRED:
        if not fields[name]:
            raise DataError(f"{path}:{line}: field '{name}' is empty")
    if fields["table"] not in KNOWN_TABLES:
        raise DataError(f"{path}:{line}: field 'table': unknown table {fields['table']!r}; known: {', '.join(KNOWN_TABLES)}")
    if fields["status"] not in STATUSES:
        raise DataError(f"{path}:{line}: field 'status': {fields['status']!r} is not one of {', '.join(STATUSES)}")
    value = _parse_value(path, line, fields["value"], fields["note"])
    return PaperCell(
        table=fields["table"], version=fields["version"], setting=fields["setting"], backbone=fields["backbone"],
        method=fields["method"], task=fields["task"], metric=fields["metric"], value=value, text=fields["value"],
        status=fields["status"], note=fields["note"], line=line,
    )


def _parse_value(path: Path, line: int, text: str, note: str) -> Optional[float]:
    if not text:
        if not note:
            raise DataError(f"{path}:{line}: field 'value' is empty and 'note' does not say why")
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: field 'value': {text!r} is not a number") from None
    if not math.isfinite(value) or not -100.0 <= value <= 100.0:
        raise DataError(f"{path}:{line}: field 'value': {text!r} is not a percentage in [-100, 100]")
    return value
