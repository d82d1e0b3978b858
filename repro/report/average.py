"""The paper's SuperGLUE Avg, the one rule every table uses: per task the mean of its metrics (CB acc and F1,
MultiRC EM and F1a), then the mean over the tasks that declare `in_avg` (tasks/; the paper's seven, ReCoRD
and the diagnostics left out).

Values are keyed by (the task's paper name, metric key). A row lacking some task gets no Avg (`value` None,
what is missing named): an average over fewer tasks is not comparable with the paper's. The quick tables may
ask for the average over what is there (`allow_missing=True`), and then mark it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional


def avg_tasks() -> dict[str, tuple[str, ...]]:
    """Paper name -> metric keys of every task in the Avg, in table order (from the task declarations)."""
    from repro.tasks.registry import all_tasks

    return {t.display_name: tuple(t.metrics) for t in all_tasks() if t.in_avg}


@dataclass(frozen=True)
class Average:
    value: Optional[float]
    tasks_present: int
    tasks_needed: int
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing and self.value is not None


def superglue_average(values: Mapping[tuple[str, str], Optional[float]], *, allow_missing: bool = False) -> Average:
    """`values[(task, metric)]` in the paper's names -> the row's Avg, or how many tasks it lacks."""
    tasks = avg_tasks()
    scores: list[float] = []
    missing: list[str] = []
    for task, metrics in tasks.items():
        parts = [values.get((task, m)) for m in metrics]
        if any(p is None for p in parts):
            missing.append(task)
            continue
        scores.append(sum(parts) / len(parts))  # type: ignore[arg-type]
    if (missing and not allow_missing) or not scores:
        return Average(None, len(scores), len(tasks), tuple(missing))
    return Average(sum(scores) / len(scores), len(scores), len(tasks), tuple(missing))
