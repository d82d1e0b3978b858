"""Reporting: compare result files with the paper's tables, as markdown/CSV tables, PNG plots and
the generated sections of REPRODUCING.md.

Modules, one job each: `paper` (the shipped paper table), `results` (the one reader of result files),
`names` (every name mapping and backbone alias), `match` (which paper cell each number is compared with; the
SuperGLUE columns from the task declarations), `average` (the paper's SuperGLUE Avg), `summary` (counts and
gaps), `relations` (the per-relation LAMA table), `text` (number and mark formatting), `tables`, `plots`,
`reproducing` (marker sections), `build` (end to end) and `cli` (`python -m repro report`). The quick
tables `lama_table` and `superglue_table` are views on the same code, printed for a terminal.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: `python -m repro` builds every subcommand's parser, and pandas/matplotlib
# should not slow down the other subcommands.
_EXPORTS = {
    "Report": "build", "ReportOptions": "build", "build_report": "build",
    "PaperCell": "paper", "PaperTables": "paper", "load_paper_tables": "paper",
    "LoadProblem": "results", "Result": "results", "ResultSet": "results", "discover_results": "results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'repro.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"repro.report.{_EXPORTS[name]}"), name)
