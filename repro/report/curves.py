"""Training curves: every trained run's history (training loss and dev score at each check) as PNG, one sheet
per run group, so that a stalled relation or seed is seen at a glance.

- LAMA: all relations of one run (backbone, method, vocabulary) on one sheet, one small panel per relation,
  its seeds overlaid, read from the relation files beside the run's summary (`training.history`).
- SuperGLUE: one sheet per (setting, backbone, method), one panel per task, the seeds overlaid, read from the
  result file (`training.<seed>.history`; files written before histories were kept there have none: skipped).
Dev score solid (left axis), loss dashed (right axis). Written under `<plots>/curves/`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from repro.report.facts import raw
from repro.report.plots import COLORS, save
from repro.report.results import Result
from repro.report.text import slug
from repro.results import seed_folder

History = list[dict[str, Any]]


def lama_histories(result: Result) -> dict[str, dict[str, History]]:
    """Relation id -> seed -> its training history, from the relation files beside a LAMA summary (the default
    seed's at the run folder's top, any other seed's in its `seed<S>/` folder: `repro.results.seed_folder`)."""
    seeds = list(result.seed_metrics) or [str((result.config.get("seeds") or [""])[0])]
    out: dict[str, dict[str, History]] = {}
    for relation in result.relations:
        for seed in seeds:
            folder = seed_folder(result.path.parent, int(seed)) if seed.isdigit() else result.path.parent
            history = (raw(folder / f"{relation.relation}.json").get("training") or {}).get("history")
            if history:
                out.setdefault(relation.relation, {})[seed] = history
    return out


def superglue_histories(result: Result) -> dict[str, History]:
    """Seed -> its training history, from a SuperGLUE result file."""
    training = raw(result.path).get("training") or {}
    return {seed: t["history"] for seed, t in training.items() if isinstance(t, dict) and t.get("history")}


def _panel(ax, curves: dict[str, History], title: str, dev_label: str) -> None:
    twin = ax.twinx()
    for i, (name, history) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        steps = [h["step"] for h in history]
        ax.plot(steps, [h.get("dev") if isinstance(h.get("dev"), (int, float)) else math.nan for h in history],
                "o-", color=color, markersize=3, label=name if len(curves) > 1 else dev_label)
        twin.plot(steps, [h.get("loss") if h.get("loss") is not None else math.nan for h in history], "--",
                  color=color, alpha=0.6)
    ax.set_ylim(bottom=0)  # a stall at 0 reads as a flat line on the axis, not a line mid-panel
    twin.set_ylim(bottom=0)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)
    twin.tick_params(labelsize=6)


def _sheet(panels: dict[str, dict[str, History]], title: str, dev_label: str, path: Path) -> Path:
    cols = min(6, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.0 * rows + 0.6))
    for k, (name, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        _panel(ax, curves, name, dev_label)
        if k == 0 and len(curves) > 1:
            ax.legend(fontsize=6, title="seed", title_fontsize=6)
    fig.suptitle(f"{title}: {dev_label} (solid, left) and training loss (dashed, right) per step", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save(fig, path)


def write_curves(results: list[Result], out: Path) -> list[Path]:
    """One PNG per run group that has training histories; returns the files written."""
    written: list[Path] = []
    groups: dict[tuple[str, str, str], dict[str, dict[str, History]]] = {}
    for result in sorted(results, key=lambda r: r.display):
        run = Path(result.path).parent.name  # the run's folder: method and variant (`ptuning-lstm-29k`, `mp-ft-paper`)
        if result.kind == "lama":
            histories = lama_histories(result)
            if histories:
                name = f"lama_{slug(result.backbone)}_{slug(run)}"
                panels = {rel: (by_seed if len(by_seed) > 1 else {rel: h for h in by_seed.values()})
                          for rel, by_seed in histories.items()}
                written.append(_sheet(panels, f"LAMA {run}, {result.backbone}", "dev P@1", out / f"{name}.png"))
            continue
        histories = superglue_histories(result)
        if histories:
            groups.setdefault((result.setting, result.backbone, run), {})[result.task] = histories
    for (setting, backbone, method), panels in sorted(groups.items()):
        name = f"superglue_{setting}_{slug(backbone)}_{slug(method)}"
        written.append(_sheet(panels, f"SuperGLUE {setting} {method}, {backbone}", "dev score",
                              out / f"{name}.png"))
    return written
