"""Reporting: compare result files with the paper's tables, as markdown/CSV tables, PNG plots and
the generated sections of REPRODUCING.md.

Modules, one job each: `paper` (the shipped paper table), `results` (result files), `names` (every name
mapping and backbone alias), `match` (which paper cell each number is compared with), `average` (the
paper's SuperGLUE Avg), `summary` (counts and gaps), `tables`, `plots`, `reproducing` (marker sections),
`build` (end to end) and `cli` (`python -m repro report`).
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
