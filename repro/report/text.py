"""Formatting primitives shared by the report's markdown tables and the quick terminal tables, so that a
number, a missing value and a paper value's provenance mark read the same in every output."""

from __future__ import annotations

import re
from typing import Optional, Protocol

DASH = "—"
# A paper value's provenance -> its mark (corroborated by an independent quote: none).
STATUS_MARKS = {"corroborated": "", "transcribed": "†", "computed": "‡"}


class PaperNumber(Protocol):
    """What `paper_text` reads: a paper cell (`PaperCell`) or a matched paper value (`PaperValue`)."""

    value: Optional[float]
    text: str
    status: str


def fmt(value: float) -> str:
    return f"{value:.1f}"


def number(value: Optional[float]) -> str:
    """One decimal, or the dash of a missing value."""
    return DASH if value is None else fmt(value)


def paper_text(paper: Optional[PaperNumber]) -> str:
    """The paper's number as printed there, with its provenance mark; `n/r` where the paper reports none."""
    if paper is None:
        return DASH
    if paper.value is None:
        return "n/r"
    return paper.text + STATUS_MARKS.get(paper.status, "")


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def slug(text: str) -> str:
    """A file-name-safe form of a backbone name (table and plot file names)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "backbone"
