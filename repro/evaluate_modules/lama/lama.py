"""LAMA precision@1 as an `evaluate` module, computed by the suite's own functions (`repro.metrics`).

`predictions` and `references` are token ids (or any comparable labels) of the predicted and gold object per
fact; `relations` (optional) names each fact's relation. Returns, in percent as the LAMA paper reports it:
`p_at_1` over all facts, and with `relations` also `macro_p_at_1` (mean over relations) and `micro_p_at_1`
(over all facts), `num_relations` and `num_facts`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional, Sequence

import datasets
import evaluate

from repro import metrics

_KWARGS = """
Args:
    predictions: predicted object id per fact; references: gold object id per fact.
    relations (optional): the relation of each fact, for the macro average.
"""


class Lama(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="LAMA P@1 (macro over relations and micro over facts), percent, computed by repro.metrics.",
            citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions: Sequence[int], references: Sequence[int],
                 relations: Optional[Sequence[str]] = None) -> dict[str, Any]:
        out: dict[str, Any] = {"p_at_1": metrics.p_at_1(predictions, references)}
        if relations is None:
            return out
        if len(relations) != len(predictions):
            raise ValueError(f"{len(relations)} relations for {len(predictions)} predictions")
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for relation, pred, gold in zip(relations, predictions, references):
            counts[relation][0] += int(pred == gold)
            counts[relation][1] += 1
        summary = metrics.lama_summary({r: (c, t) for r, (c, t) in counts.items()})
        out.update({k: summary[k] for k in ("macro_p_at_1", "micro_p_at_1", "num_relations", "num_facts")})
        return out
