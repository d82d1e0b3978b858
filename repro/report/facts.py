"""Counts that REPRODUCING.md states about the results, generated from the result files so that they cannot
drift from them: LAMA facts kept and dropped and relations evaluated per run, SuperGLUE per-seed dev32
selection scores and evaluation metrics, and the fidelity choices each result ran with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

BEFORE_SWITCH = "suite (recorded before the switch)"


def raw(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def fidelity_of(data: dict[str, Any]) -> str:
    """The fidelity level a result ran with, plus its per-item overrides; older files predate the switch and ran
    the suite's behaviour."""
    config = data.get("config", {})
    level = config.get("fidelity")
    if not level:
        return BEFORE_SWITCH
    items = config.get("fidelity_items") or {}
    return level + "".join(f", {k}={v}" for k, v in sorted(items.items()))


def lama_counts(data: dict[str, Any]) -> dict[str, Any]:
    """Relations evaluated and test facts kept/dropped of a LAMA summary."""
    relations = data.get("relations", {})
    kept = sum(r.get("kept") or 0 for r in relations.values())
    dropped = sum(r.get("dropped") or 0 for r in relations.values())
    evaluated = sum(1 for r in relations.values() if r.get("p_at_1") is not None)
    return {"relations": len(relations), "evaluated": evaluated, "kept": kept, "dropped": dropped,
            "kept_share": 100.0 * kept / (kept + dropped) if kept + dropped else 0.0}


def facts_section(results: Sequence[Any]) -> str:
    """Markdown: per LAMA run its relation and fact counts; per trained SuperGLUE result its per-seed dev32
    selection scores (what model selection compared) and evaluation metrics."""
    from repro.report.frame import to_frame  # pandas only where the report needs it

    frame = to_frame(list(results))
    lama, superglue = [], []
    for r in sorted(results, key=lambda r: r.display):
        data = raw(r.path)
        if r.kind == "lama":
            c = lama_counts(data)
            lama.append(f"| {r.display} | {c['evaluated']} of {c['relations']} | {c['kept']:,} | {c['dropped']:,} | "
                        f"{c['kept_share']:.1f}% | {fidelity_of(data)} |")
        elif data.get("training"):
            for seed, training in data["training"].items():
                best = training.get("best_dev")
                best_text = "/".join(f"{b:.1f}" for b in best) if isinstance(best, list) else f"{best:.1f}"
                rows = frame[(frame.path == r.display) & (frame.seed == int(seed))]
                metrics = ", ".join(f"{k} {v:.1f}" for k, v in zip(rows.metric, rows.value))
                superglue.append(f"| {r.display} | {seed} | {best_text} (step {training.get('best_step')}) | "
                                 f"{metrics} | {fidelity_of(data)} |")
    parts = []
    if lama:
        parts.append("\n".join(["| LAMA run | relations evaluated | test facts kept | dropped | kept | fidelity |",
                                "| --- | --- | --- | --- | --- | --- |", *lama]))
    if superglue:
        parts.append("\n".join([
            "| SuperGLUE result | seed | dev selection score (best step) | evaluation metrics | fidelity |",
            "| --- | --- | --- | --- | --- |", *superglue]))
        parts.append("The dev selection score is what model selection compared: under `selection=mean` the mean "
                     "of the task's metrics on the selection set (few-shot: dev32; MultiRC: EM and F1a); under "
                     "`selection=authors` accuracy and F1 together (CB, MultiRC, ReCoRD).")
    return "\n\n".join(parts) or "No result files found."
