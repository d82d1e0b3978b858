"""The project's own record of what every data file must hash to, and the rule that keeps paths in the root.

Why: `python -m repro data fetch` copies from a mirror or unpacks official archives. Checking a mirror's
files against the mirror's own MANIFEST.tsv proves nothing (whoever alters a file can alter its row), and the
official archives (LAMA, SuperGLUE, FewGLUE) publish no checksum. So the expected sha256 of every file the
project fetches is pinned here, in `repro/data_pins.tsv` inside the package, generated from the reference mirror
(`../shared/data`) by hashing its real files (`python -m repro data pin --mirror DIR`, a maintainer's command).
The archives' own checksums are unknowable offline, so the files they yield are pinned instead.

`status` is the mirror's: `complete` files are the published bytes (an official download must match them),
`reconstructed` files were rebuilt for the mirror (the original's bytes are unknown here; see PARTIAL.tsv).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from repro.errors import DataError

PINS_FILE = Path(__file__).with_name("data_pins.tsv")
PIN_COLUMNS = ("path", "bytes", "sha256", "status")
PathLike = Union[str, Path]


@dataclass(frozen=True)
class Pin:
    path: str
    bytes: int
    sha256: str
    status: str  # "complete" (the published bytes) or "reconstructed" (rebuilt for the mirror)

    @property
    def published(self) -> bool:
        """Whether these are the published bytes, so an official download must reproduce them."""
        return self.status == "complete"


def load_pins(path: PathLike = PINS_FILE) -> dict[str, Pin]:
    """The pinned files by relative path (a missing or malformed pin file is a DataError: it ships with the code)."""
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise DataError(f"{path}: the project's pinned checksums are missing; reinstall the package") from None
    with handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if tuple(reader.fieldnames or ()) != PIN_COLUMNS:
            raise DataError(f"{path}:1: expected columns {', '.join(PIN_COLUMNS)}, found {reader.fieldnames}")
        pins = {}
        for line, row in enumerate(reader, start=2):
            try:
                pins[row["path"]] = Pin(row["path"], int(row["bytes"]), row["sha256"], row["status"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: malformed pin row {row}") from None
        return pins


def inside(root: PathLike, relpath: str, where: str) -> Path:
    """`root / relpath`, refused (DataError naming `where`, e.g. `MANIFEST.tsv:7`, and the path) unless it
    resolves inside `root`: no absolute paths, no `..` that climbs out, no symlink that leads out."""
    base = Path(root).resolve()
    target = (base / relpath).resolve()
    if Path(relpath).is_absolute() or not target.is_relative_to(base) or target == base:
        raise DataError(f"{where}: path {relpath!r} leaves the data root {base}; refused, nothing written")
    return target


def write_pins(rows: list[Pin], path: PathLike = PINS_FILE) -> Path:
    from repro.atomic import atomic_write_text

    lines = ["\t".join(PIN_COLUMNS)] + [f"{p.path}\t{p.bytes}\t{p.sha256}\t{p.status}" for p in sorted(rows, key=lambda p: p.path)]
    return atomic_write_text(Path(path), "\n".join(lines) + "\n")
