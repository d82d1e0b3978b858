"""The paper's SuperGLUE average: mean over the 7 tasks, CB and MultiRC first averaged over their two metrics.

Computed only when every task of the row is present: an average over fewer tasks is not comparable with the
paper's, so it is reported as incomplete instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

# The paper's 7 tasks (ReCoRD left out) and the metrics that make each task's score.
AVG_TASKS: dict[str, tuple[str, ...]] = {
    "BoolQ": ("acc",),
    "CB": ("acc", "f1_macro"),
    "WiC": ("acc",),
    "RTE": ("acc",),
    "MultiRC": ("em", "f1a"),
    "WSC": ("acc",),
    "COPA": ("acc",),
}


@dataclass(frozen=True)
class Average:
    value: Optional[float]
    tasks_present: int
    tasks_needed: int = len(AVG_TASKS)
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.value is not None


def superglue_average(values: Mapping[tuple[str, str], Optional[float]]) -> Average:
    """`values[(task, metric)]` in the paper's names -> the row's Avg, or how many tasks it lacks."""
    scores: list[float] = []
    missing: list[str] = []
    for task, metrics in AVG_TASKS.items():
        parts = [values.get((task, m)) for m in metrics]
        if any(p is None for p in parts):
            missing.append(task)
            continue
        scores.append(sum(parts) / len(parts))  # type: ignore[arg-type]
    if missing:
        return Average(None, len(scores), missing=tuple(missing))
    return Average(sum(scores) / len(scores), len(scores))
