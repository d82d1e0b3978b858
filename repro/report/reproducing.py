"""Keep REPRODUCING.md true: rewrite only the text between `<!-- report:begin NAME -->` and
`<!-- report:end NAME -->`, so hand-written prose around the generated numbers is never touched.

A section whose markers are missing is appended at the end of the file (the file is created if absent).
Broken markers (an end without a begin, a begin never closed, a name twice) are an error naming the line,
rather than a guess that could eat prose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from repro.atomic import atomic_write_text
from repro.errors import DataError

MARKER = re.compile(r"^\s*<!--\s*report:(begin|end)\s+([A-Za-z0-9_.-]+)\s*-->\s*$")
NEW_FILE_HEADING = "# Reproducing \"GPT Understands, Too\" (P-tuning)\n"


def begin(name: str) -> str:
    return f"<!-- report:begin {name} -->"


def end(name: str) -> str:
    return f"<!-- report:end {name} -->"


def find_sections(text: str, source: str = "REPRODUCING.md") -> dict[str, tuple[int, int]]:
    """name -> (index of the begin line, index of the end line), 0-based, validated."""
    sections: dict[str, tuple[int, int]] = {}
    open_name, open_at = None, -1
    for i, line in enumerate(text.splitlines()):
        match = MARKER.match(line)
        if not match:
            continue
        kind, name = match.groups()
        if kind == "begin":
            if open_name is not None:
                raise DataError(f"{source}:{i + 1}: section {name!r} begins inside section {open_name!r} "
                                f"(begun at line {open_at + 1})")
            if name in sections:
                raise DataError(f"{source}:{i + 1}: section {name!r} appears twice")
            open_name, open_at = name, i
        else:
            if open_name != name:
                raise DataError(f"{source}:{i + 1}: end of section {name!r} without its begin marker")
            sections[name] = (open_at, i)
            open_name = None
    if open_name is not None:
        raise DataError(f"{source}:{open_at + 1}: section {open_name!r} has no end marker {end(open_name)!r}")
    return sections


def update_sections(text: str, sections: Mapping[str, str], source: str = "REPRODUCING.md") -> str:
    """`text` with each named section's body replaced; missing sections appended in the given order."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    found = find_sections(text, source)
    for name, (start, stop) in sorted(found.items(), key=lambda kv: -kv[1][0]):
        if name in sections:
            lines[start + 1:stop] = sections[name].strip("\n").splitlines()
    appended = [name for name in sections if name not in found]
    for name in appended:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [begin(name)] + sections[name].strip("\n").splitlines() + [end(name)]
    return newline.join(lines) + newline


def write_sections(path: Path, sections: Mapping[str, str]) -> Path:
    """Update (or create) the file in place, atomically."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE_HEADING
    return atomic_write_text(path, update_sections(text, sections, str(path)))
