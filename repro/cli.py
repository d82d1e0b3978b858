"""Command line: `python -m repro {lama,superglue,report,data} ...`.

Each subcommand lives in the module that does the work; a module registers itself with
`register(subparsers)` and sets `func` on its parser. Errors a user can act on (`ReproError`) are printed
as one line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from repro.errors import ReproError

SUBCOMMANDS = {
    "lama": "repro.experiment.lama",
    "lama-table": "repro.report.lama_table",
    "superglue": "repro.experiment.superglue",
    "superglue-table": "repro.report.superglue_table",
    "report": "repro.report.cli",
    "data": "repro.data",
}


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """All subcommands, or only `only` (imports just the module that runs: `report` needs no torch)."""
    parser = argparse.ArgumentParser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, module_name in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(chosen).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ReproError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished relations/seeds are kept and a rerun resumes", file=sys.stderr)
        return 130
