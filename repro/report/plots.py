"""PNG plots of the comparison: LAMA per relation, SuperGLUE per task, and ours minus paper.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no display, no global
backend switch), so the report runs headless and never disturbs another module's plotting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure

from repro.atomic import atomic_write
from repro.report.match import Row, TableView
from repro.report.summary import Comparison
from repro.report.relations import RelationTable, method_name
from repro.report.text import slug

MAX_DELTAS = 40
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


def save(fig: Figure, path: Path) -> Path:
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))


def plot_relations(table: RelationTable, path: Path) -> Path:
    """Grouped bars of P@1 per relation, one colour per method, dashed lines at each method's macro P@1."""
    names = table.relations()
    methods = table.methods
    width = 0.8 / len(methods)
    fig = Figure(figsize=(max(7.0, 0.32 * len(names) * len(methods) + 2), 4.8))
    ax = fig.add_subplot()
    partial, missing = set(), set()
    for i, method in enumerate(methods):
        result = table.by_method[method]
        values = {r.relation: r for r in result.relations}
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(names))]
        heights = [values[n].p_at_1 if n in values and values[n].p_at_1 is not None else 0.0 for n in names]
        partial |= {n for n in names if n in values and values[n].partial}
        missing |= {n for n in names if n not in values or values[n].p_at_1 is None}
        color = COLORS[i % len(COLORS)]
        macro = result.metrics["macro_p_at_1"]
        label = f"{method_name(method)} (macro {macro:.1f})"
        spread = None
        if result.n_seeds > 1:  # whiskers from the lowest to the highest seed: a stall in one seed shows
            seeds = [values[n].seeds if n in values else {} for n in names]
            spread = [[h - min(v.values(), default=h) for h, v in zip(heights, seeds)],
                      [max(v.values(), default=h) - h for h, v in zip(heights, seeds)]]
            label = (f"{method_name(method)} (macro {macro:.1f} ± {result.std.get('macro_p_at_1', 0.0):.1f}; "
                     f"bars: mean of seeds {', '.join(result.seed_metrics)}, whiskers: lowest to highest)")
        ax.bar(xs, heights, width, yerr=spread, capsize=1.5, error_kw={"linewidth": 0.8}, color=color, label=label)
        ax.axhline(macro, color=color, linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n + ("*" if n in partial else "") + ("°" if n in missing else "") for n in names],
                       rotation=90, fontsize=8)
    ax.set_ylabel("P@1 (%)")
    ax.set_ylim(0, 100)
    ax.set_xlabel("T-REx relation (* = partial test set, ° = not evaluated by some method)")
    ax.set_title(f"LAMA-{table.vocab} P@1 per relation on {table.backbone}: "
                 f"{' vs '.join(method_name(m) for m in methods)}\n(dashed: macro average over relations)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_superglue(view: TableView, backbone: str, path: Path) -> Optional[Path]:
    """One backbone's rows of a SuperGLUE table: bars per method and task, the paper's values as black marks."""
    rows = [(row, cells) for row, cells in zip(view.rows, view.grid)
            if row.backbone == backbone and any(c.ours is not None and c.ours.value is not None for c in cells)]
    if not rows:
        return None
    columns = [j for j, col in enumerate(view.columns)
               if any(cells[j].ours is not None and cells[j].ours.value is not None for _, cells in rows)]
    width = 0.8 / len(rows)
    fig = Figure(figsize=(max(7.0, 1.1 * len(columns) + 2), 4.8))
    ax = fig.add_subplot()
    marked = False
    for i, (row, cells) in enumerate(rows):
        xs, heights, errs, paper_xs, paper_ys = [], [], [], [], []
        for k, j in enumerate(columns):
            x = k + (i - (len(rows) - 1) / 2) * width
            ours, paper = cells[j].ours, cells[j].paper
            if ours is not None and ours.value is not None:
                xs.append(x)
                heights.append(ours.value)
                errs.append(ours.std or 0.0)
            if paper is not None and paper.value is not None:
                paper_xs.append(x)
                paper_ys.append(paper.value)
        ax.bar(xs, heights, width, yerr=errs, capsize=2, color=COLORS[i % len(COLORS)], label=_row_label(row))
        if paper_xs:
            ax.hlines(paper_ys, [x - width / 2 for x in paper_xs], [x + width / 2 for x in paper_xs],
                      colors="black", linewidths=2.5, zorder=3, label=None if marked else "paper (compared row)")
            marked = True
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([view.columns[j].label for j in columns], rotation=30, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 100)
    compared = sorted({row.paper_backbone for row, _ in rows if row.paper_backbone})
    against = f"the paper's {', '.join(compared)} rows (black marks)" if compared else "no paper row"
    ax.set_title(f"{view.spec.title}\nours on {backbone} (bars, ±std over seeds) vs {against}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def _row_label(row: Row) -> str:
    return row.method if row.compared or row.paper_method else f"{row.method}, no paper row"


def plot_deltas(comparisons: list[Comparison], tolerance: float, path: Path) -> Optional[Path]:
    """Ours minus paper for every compared cell (the largest gaps when there are many), band = tolerance."""
    if not comparisons:
        return None
    shown = sorted(comparisons, key=lambda c: -abs(c.delta))[:MAX_DELTAS]
    shown.sort(key=lambda c: c.delta)
    fig = Figure(figsize=(10.0, max(3.0, 0.32 * len(shown) + 1.6)))
    ax = fig.add_subplot()
    colors = ["#999999" if c.within(tolerance) else ("#55A868" if c.delta > 0 else "#C44E52") for c in shown]
    deltas = [c.delta for c in shown]
    ax.barh(range(len(shown)), deltas, color=colors)
    ax.scatter(deltas, range(len(shown)), s=12, color=colors, edgecolors="black", linewidths=0.5, zorder=3)
    ax.axvspan(-tolerance, tolerance, color="#cccccc", alpha=0.5, zorder=0)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([_delta_label(c) for c in shown], fontsize=8)
    ax.set_xlabel("ours − paper (points)")
    subset = f"the {len(shown)} largest of {len(comparisons)}" if len(shown) < len(comparisons) else f"{len(shown)}"
    ax.set_title(f"Ours minus the paper: {subset} compared cell(s)\n"
                 f"grey: within ±{tolerance:g}; red/green: below/above the paper; "
                 "'vs X': compared with the paper's X row; * partial result",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def _delta_label(c: Comparison) -> str:
    backbone = c.row.backbone if c.row.same_backbone else f"{c.row.backbone} vs {c.row.paper_backbone}"
    return f"{c.table} | {c.row.method} | {backbone} | {c.column.label}{' *' if c.partial else ''}"


def plot_claims(rows: list, path: Path) -> Optional[Path]:
    """Per claim and backbone where both sides ran (`repro.report.claims.Row`), A's and B's means with whiskers of
    one sample std over seeds, the verdict at the right: the method comparisons the Claims section judges."""
    shown = [r for r in rows if r.a is not None and r.b is not None]
    if not shown:
        return None
    fig = Figure(figsize=(9.0, max(2.6, 0.9 + 0.55 * len(shown))))
    ax = fig.add_subplot()
    for i, row in enumerate(reversed(shown)):
        for side, score, offset, color in ((row.claim.a, row.a, 0.15, COLORS[0]), (row.claim.b, row.b, -0.15, COLORS[1])):
            ax.barh(i + offset, score.mean, 0.28, xerr=score.std or 0.0, capsize=2, color=color)
            ax.text(score.mean + (score.std or 0.0) + 0.5, i + offset, side.label, va="center", fontsize=7)
        ax.text(1.01, i, row.verdict, transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ends = [s.mean + sign * (s.std or 0.0) for r in shown for s in (r.a, r.b) for sign in (-1, 1)]
    ax.set_xlim(min(0.0, min(ends)), max(ends) * 1.18)  # room for the side labels, clear of the verdicts
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"{r.claim.key} ({r.backbone}, {r.preset})" for r in reversed(shown)], fontsize=8)
    ax.set_xlabel("score (LAMA: macro P@1; SuperGLUE: mean of task scores), mean ± std over seeds")
    ax.set_title("The paper's claims: A (upper bar) vs B (lower bar)", fontsize=10)
    return save(fig, path)


def write_plots(views: list[TableView], relations: list[RelationTable], comparisons: list[Comparison],
                tolerance: float, out: Path) -> list[Path]:
    written = [plot_relations(t, out / f"{t.key}.png") for t in relations]
    for view in views:
        if view.spec.kind not in ("supervised", "fewshot") or not view.has_ours:
            continue
        for backbone in sorted({r.backbone for r in view.results}):
            path = plot_superglue(view, backbone, out / f"{view.spec.key}_{slug(backbone)}.png")
            if path is not None:
                written.append(path)
    delta = plot_deltas(comparisons, tolerance, out / "delta.png")
    return written + ([delta] if delta else [])
