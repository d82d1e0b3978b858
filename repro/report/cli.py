"""`python -m repro report`: compare results/ with the paper's tables (markdown, CSV, PNG, REPRODUCING.md).

Without `--results` the project's own results/ is read, wherever the command runs (as the other subcommands
resolve their defaults); paths given explicitly are taken as given, relative to the working directory.
REPRODUCING.md is rewritten only for the project's own results (`--results results`, or no `--results`) or
when `--reproducing FILE` names a file: a report on a user's runs (`--results runs`, `--results /tmp/x`) never
touches it."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional

from repro.results import PROJECT_ROOT

DEFAULT_RESULTS = Path("results")  # relative to the project root
DEFAULT_REPRODUCING = Path("REPRODUCING.md")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `report` subcommand of `repro.cli`."""
    parser = subparsers.add_parser(
        "report",
        help="compare results with the paper's tables: markdown/CSV tables, PNG plots, REPRODUCING.md",
        description=__doc__,
    )
    parser.add_argument("--results", type=Path, default=None,
                        help="directory searched for result JSON files (default: the project's results/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where tables/ and plots/ are written (default: the results directory)")
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="a cell is reproduced when |ours - paper| <= this many points (default: 1.0)")
    parser.add_argument("--reproducing", type=Path, default=None,
                        help="markdown file whose report sections are regenerated (default: the project's "
                             "REPRODUCING.md, and only when the results are the project's own results/)")
    parser.add_argument("--no-reproducing", action="store_true", help="leave REPRODUCING.md alone")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.set_defaults(func=run)
    return parser


def resolved(given: Optional[Path], default: Path) -> Path:
    """An explicit path as given (relative to the working directory); else the default under the project root."""
    return given if given is not None else PROJECT_ROOT / default


def reproducing_path(args: argparse.Namespace) -> Optional[Path]:
    """The markdown file whose sections the report regenerates: the one named by `--reproducing`; else the
    project's REPRODUCING.md when the results read are the project's own results/; else none."""
    if args.no_reproducing:
        return None
    if args.reproducing is not None:
        return args.reproducing
    own = resolved(args.results, DEFAULT_RESULTS).resolve() == (PROJECT_ROOT / DEFAULT_RESULTS).resolve()
    return PROJECT_ROOT / DEFAULT_REPRODUCING if own else None


def command_line(args: argparse.Namespace) -> str:
    """The command as a user would retype it from the project root, for the generated REPRODUCING.md section
    (a default path is spelled relative to the project root, so the text does not depend on the checkout)."""
    parts = ["python", "-m", "repro", "report", "--results", str(args.results or DEFAULT_RESULTS)]
    if args.out is not None:
        parts += ["--out", str(args.out)]
    parts += ["--tolerance", f"{args.tolerance:g}"]
    if reproducing_path(args) is not None:
        parts += ["--reproducing", str(args.reproducing or DEFAULT_REPRODUCING)]
    if args.no_plots:
        parts.append("--no-plots")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Build the report and print its summary; warnings about skipped files go to stderr."""
    from repro.report.build import ReportOptions, build_report  # pandas and matplotlib only when reporting

    options = ReportOptions(
        results=resolved(args.results, DEFAULT_RESULTS), out=args.out, tolerance=args.tolerance,
        reproducing=reproducing_path(args),
        plots=not args.no_plots,
        command=command_line(args),
    )
    report = build_report(options)
    for problem in report.results.problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    print("\n".join(line for line in report.lines if not line.startswith("skipped: ")))
    written = f"Wrote {len(report.tables)} table file(s) to {options.out_dir / 'tables'}"
    if options.plots:
        written += f", {len(report.plots)} plot(s) to {options.out_dir / 'plots'}"
    if report.reproducing is not None:
        written += f", report sections of {report.reproducing}"
    if report.removed:
        written += f"; removed {len(report.removed)} out-of-date file(s): {', '.join(p.name for p in report.removed)}"
    print(written)
    return 0
