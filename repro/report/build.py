"""The report from end to end: read results, match them to the paper, write tables, plots, REPRODUCING.md.

Kept apart from the CLI so that tests and scripts call one function with plain arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from repro.errors import ConfigError
from repro.report.match import Matching, TableView, build_views, encoder_note
from repro.report.paper import PaperTables, load_paper_tables
from repro.report.plots import plot_claims, write_plots
from repro.report.reproducing import write_sections
from repro.report.results import Result, ResultSet, discover_results
from repro.report.schedules import schedules_section
from repro.report.claims import Row as ClaimRow, claim_rows, claims_section
from repro.report.spread import SPREAD_DIR, spread_section
from repro.report.summary import Summary, summarize, summary_lines
from repro.report.relations import relation_tables
from repro.report.curves import write_curves
from repro.report.facts import facts_section, fidelity_of, raw
from repro.report.tables import view_markdown, write_tables

ENV_ITEMS = 8
ENV_FIRST = ("device", "dtype", "torch_threads", "threads", "packages.torch", "torch", "packages.transformers",
             "transformers", "python")
# Names this report writes: an older file of these names that this run did not write is out of date.
GENERATED_TABLES = ("table*.md", "table*.csv", "lama_*.md", "lama_*.csv", "comparison.csv")
GENERATED_PLOTS = ("table*.png", "lama_*.png", "delta.png", "claims.png", "curves/*.png")


@dataclass
class ReportOptions:
    results: Path = Path("results")
    out: Optional[Path] = None
    tolerance: float = 1.0
    reproducing: Optional[Path] = Path("REPRODUCING.md")
    plots: bool = True
    paper: Optional[Path] = None
    command: str = "python -m repro report"

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.results)


@dataclass
class Report:
    results: ResultSet
    matching: Matching
    summary: Summary
    lines: list[str]
    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    reproducing: Optional[Path] = None
    paper: Optional[PaperTables] = None
    claims: list[ClaimRow] = field(default_factory=list)


def report_results(results_dir: Path, out_dir: Optional[Path] = None) -> ResultSet:
    """The result files a report reads: every JSON under `results_dir` but the report's own tables and plots
    (under `out_dir`, by default the results folder) and the spread reruns (their own section)."""
    out_dir = results_dir if out_dir is None else out_dir
    return discover_results(results_dir, exclude=[out_dir / "tables", out_dir / "plots", results_dir / SPREAD_DIR])


def build_report(options: ReportOptions) -> Report:
    if options.tolerance < 0:
        raise ConfigError(f"--tolerance must be >= 0, got {options.tolerance}")
    results_dir = Path(options.results)
    if not results_dir.is_dir():
        raise ConfigError(f"results directory {str(results_dir)!r} not found; run `python -m repro lama ...` or "
                          "`python -m repro superglue ...` first, or pass --results DIR")
    paper: PaperTables = load_paper_tables(options.paper)
    tables_dir, plots_dir = options.out_dir / "tables", options.out_dir / "plots"
    found = report_results(results_dir, options.out_dir)
    matching = build_views(paper, found.results)
    summary = summarize(matching.views, options.tolerance)
    lines = summary_lines(summary, len(found.results), [str(p) for p in found.problems], matching.warnings)
    report = Report(found, matching, summary, lines, paper=paper, claims=claim_rows(found.results))
    relations = relation_tables(found.results)
    report.tables = write_tables(matching.views, relations, tables_dir)
    report.removed = remove_stale(tables_dir, report.tables, GENERATED_TABLES)
    if options.plots:
        report.plots = write_plots(matching.views, relations, summary.same + summary.nearest,
                                   options.tolerance, plots_dir)
        report.plots += write_curves(found.results, plots_dir / "curves")
        claims_plot = plot_claims(report.claims, plots_dir / "claims.png")
        report.plots += [claims_plot] if claims_plot else []
        report.removed += remove_stale(plots_dir, report.plots, GENERATED_PLOTS)
    if options.reproducing is not None:
        report.reproducing = write_sections(options.reproducing, reproducing_sections(report, options))
    return report


def remove_stale(directory: Path, written: list[Path], patterns: tuple[str, ...]) -> list[Path]:
    """Delete earlier outputs of this report that this run did not rewrite (a result removed, a backbone
    renamed), so the committed tables and plots never show numbers that no result file backs."""
    keep = {Path(p).resolve() for p in written}
    stale = sorted({p for pattern in patterns for p in Path(directory).glob(pattern)
                    if p.is_file() and p.resolve() not in keep})
    for path in stale:
        path.unlink()
    return stale


def reproducing_sections(report: Report, options: ReportOptions) -> dict[str, str]:
    """The generated parts of REPRODUCING.md: the summary, the tables with ours, the runs behind them."""
    base = Path(options.reproducing).parent if options.reproducing else Path(".")
    stamp = f"_Generated by `{options.command}`; the text between the report markers is rewritten on each run._"
    summary = "\n".join([stamp, "", "```text", *report.lines, "```"])
    return {
        "summary": summary,
        "tables": _tables_section(report, base),
        "runs": _runs_section(report),
        "facts": facts_section(report.results.results),
        "spread": spread_section(report.results.results, Path(options.results)),
        "schedules": schedules_section(Path(options.results)),
        "claims": claims_section(report.claims, report.paper),
    }


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _tables_section(report: Report, base: Path) -> str:
    parts: list[str] = []
    with_ours = [v for v in report.matching.views if v.has_ours]
    for view in with_ours:
        parts.append(view_markdown(view).replace("## ", "### ", 1))
    without = [v.spec.paper_table or v.spec.key for v in report.matching.views if not v.has_ours]
    if without:
        parts.append(f"No results of ours yet for: {', '.join(without)} (their paper values are in the table files).")
    if not with_ours:
        parts.insert(0, "No result files were found, so every table holds only the paper's numbers.")
    files = sorted(p for p in report.tables if p.suffix == ".md")
    parts.append("Table files: " + ", ".join(f"[{p.stem}]({_link(p, base)})" for p in files) + ".")
    delta = [p for p in report.plots if p.name == "delta.png"]
    if delta:
        parts.append(f"![Ours minus the paper for every compared cell]({_link(delta[0], base)})")
    others = [p for p in report.plots if p.name != "delta.png" and p.parent.name != "curves"]
    if others:
        parts.append("Plots: " + ", ".join(f"[{p.stem}]({_link(p, base)})" for p in others) + ".")
    curves = sorted(p for p in report.plots if p.parent.name == "curves")
    if curves:
        parts.append("Training curves (dev score and loss per check, one sheet per run group): "
                     + ", ".join(f"[{p.stem}]({_link(p, base)})" for p in curves) + ".")
    return "\n\n".join(parts)


def _runs_section(report: Report) -> str:
    results = sorted(report.results.results, key=lambda r: r.display)
    if not results:
        return "No result files found."
    lines = ["| Result | Preset | Fidelity | Command | Commit | Environment | Wall time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        wall = f"{r.wall_time_s:.0f} s" if r.wall_time_s is not None else "—"
        commit = r.git_commit[:10] + ("-dirty" if r.git_commit.endswith("-dirty") else "")
        cells = [r.display, preset_cell(r), fidelity_of(raw(r.path)), f"`{r.command}`" if r.command else "—",
                 commit or "—",
                 environment_brief(r.environment) or "—", wall]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if report.results.problems:
        lines += ["", "Skipped (malformed):"] + [f"- {p}" for p in report.results.problems]
    return "\n".join(lines)


def preset_cell(result: Result) -> str:
    """The preset, and the prompt encoder where it is not the paper's LSTM (`--encoder mlp | none`), so the runs
    list tells an ablation from the paper's encoder (`repro.report.match.encoder_note`)."""
    return ", ".join(part for part in (result.preset or "—", encoder_note(result)) if part)


def environment_brief(env: dict[str, Any]) -> str:
    """The entries a reader checks first (device, dtype, threads, torch, transformers), then how many more."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key in sorted(node):
            value = node[key]
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            elif isinstance(value, (str, int, float, bool)) and value != "":
                flat[f"{prefix}{key}"] = str(value)

    walk("", env)
    shown = [k for k in ENV_FIRST if k in flat][:ENV_ITEMS] or sorted(flat)[:ENV_ITEMS]
    more = len(flat) - len(shown)
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={flat[k]}" for k in shown) + (f", … (+{more})" if more else "")


def views_by_key(report: Report) -> dict[str, TableView]:
    return {v.spec.key: v for v in report.matching.views}
