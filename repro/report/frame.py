"""Every result as one tidy pandas DataFrame: one row per number (a metric of one seed of one task, or of one
LAMA relation), with what produced it. Built on the report's one reader (`discover_results`), so a field means
the same here as in the tables; the report's totals (`repro.report.facts`) are computed from it.

    import repro.results
    df = repro.results.load("results/")
    df[df.benchmark == "superglue"].groupby(["task", "method"]).value.mean()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

import pandas as pd

from repro.report.results import Result, discover_results

COLUMNS = ("benchmark", "setting", "backbone", "method", "task", "seed", "metric", "value", "partial", "preset",
           "fidelity", "fidelity_choices", "commit", "path")
LAMA_ALL = "all"  # the `task` of a LAMA run's macro and micro P@1 (relations are listed by their id)


def _fidelity(config: dict[str, Any]) -> tuple[str, str]:
    """The level (`suite` for files written before the switch existed) and the resolved choices as JSON."""
    choices = config.get("fidelity_choices") or {}
    return str(config.get("fidelity") or "suite"), json.dumps(choices, sort_keys=True) if choices else ""


def _rows(result: Result) -> list[dict[str, Any]]:
    level, choices = _fidelity(result.config)
    common = {"benchmark": result.kind, "setting": result.setting, "backbone": result.backbone,
              "method": result.method, "preset": result.preset, "fidelity": level, "fidelity_choices": choices,
              "commit": result.git_commit, "path": result.display}
    rows: list[dict[str, Any]] = []
    if result.kind == "lama":  # one row per seed (a summary over several seeds holds each seed's numbers)
        first = str((result.config.get("seeds") or [""])[0])
        for seed, values in (result.seed_metrics or {first: result.metrics}).items():
            for metric, value in values.items():
                rows.append({**common, "task": LAMA_ALL, "seed": _seed(seed), "metric": metric, "value": value,
                             "partial": result.partial})
        for relation in result.relations:
            if relation.p_at_1 is not None:
                for seed, value in (relation.seeds or {first: relation.p_at_1}).items():
                    rows.append({**common, "task": relation.relation, "seed": _seed(seed), "metric": "p_at_1",
                                 "value": value, "partial": relation.partial})
        return rows
    per_seed = result.seed_metrics or {str((result.config.get("seeds") or [None])[0]): result.metrics}
    for seed, values in per_seed.items():
        for metric, value in values.items():
            rows.append({**common, "task": result.task, "seed": _seed(seed),
                         "metric": metric, "value": value, "partial": result.partial})
    return rows


def _seed(text: str):
    return int(text) if text.isdigit() else None


def to_frame(results: list[Result]) -> pd.DataFrame:
    rows = [row for result in results for row in _rows(result)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def load(root: Union[str, Path] = "results") -> pd.DataFrame:
    """Every result file under `root` as one DataFrame (files the report cannot read are left out, as there)."""
    return to_frame(discover_results(Path(root)).results)
