"""SuperGLUE metrics as an `evaluate` module, computed by the suite's own functions (`repro.metrics`).

Inputs, configurations and returned keys are those the Hugging Face hub's `super_glue` metric documents
(values are fractions, 0-1): `boolq`, `copa`, `rte`, `wic`, `wsc`, `wsc.fixed`, `axg` -> accuracy; `cb` ->
accuracy and macro-F1 (`f1`); `multirc` -> exact_match, per-question macro-F1 (`f1_m`) and F1 over all answer
options (`f1_a`), predictions as `{"idx": {"paragraph", "question", "answer"}, "prediction"}`; `record` ->
exact_match and f1 (official normalisation, maximum over gold answers), predictions as `{"idx": {"passage",
"query"}, "prediction_text"}` and references as `{"idx", "answers"}`; `axb` -> matthews_correlation. AX-g also
returns `gender_parity` when `pair_keys` (one key per example, shared by the two halves of a pair) is passed.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import datasets
import evaluate

from repro import metrics

CONFIGS = ("boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc", "wsc.fixed", "axb", "axg")
_ACCURACY_ONLY = ("boolq", "copa", "rte", "wic", "wsc", "wsc.fixed", "axg")

_DESCRIPTION = "SuperGLUE task metrics (the hub's super_glue keys and inputs), computed by repro.metrics."
_KWARGS = """
Args:
    predictions: labels; for multirc dicts with `idx` (paragraph, question, answer) and `prediction`; for record
        dicts with `idx` (passage, query) and `prediction_text`.
    references: labels; for record dicts with `idx` (passage, query) and `answers`.
    pair_keys (axg only, optional): one key per example, equal for the two halves of a pair -> gender_parity.
Returns: fractions (0-1) under the hub's keys; see the module docstring.
"""


def _features(config: str) -> datasets.Features:
    if config == "record":
        idx = {"passage": datasets.Value("int64"), "query": datasets.Value("int64")}
        return datasets.Features({
            "predictions": {"idx": idx, "prediction_text": datasets.Value("string")},
            "references": {"idx": idx, "answers": datasets.Sequence(datasets.Value("string"))},
        })
    if config == "multirc":
        idx = {name: datasets.Value("int64") for name in ("answer", "paragraph", "question")}
        return datasets.Features({
            "predictions": {"idx": idx, "prediction": datasets.Value("int64")},
            "references": datasets.Value("int64"),
        })
    return datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


def _fraction(percent: float) -> float:
    return float(percent) / 100.0


def _multirc(predictions: Sequence[dict], references: Sequence[int]) -> dict[str, float]:
    question_ids = [(p["idx"]["paragraph"], p["idx"]["question"]) for p in predictions]
    labels = [int(p["prediction"]) for p in predictions]
    em_f1a = metrics.multirc_em_f1a(question_ids, labels, references)
    return {"exact_match": _fraction(em_f1a["em"]),
            "f1_m": _fraction(metrics.multirc_f1m(question_ids, labels, references)),
            "f1_a": _fraction(em_f1a["f1a"])}


def _record(predictions: Sequence[dict], references: Sequence[dict]) -> dict[str, float]:
    """The official script keys answers by query id; a query without a prediction scores 0."""
    by_query = {p["idx"]["query"]: p["prediction_text"] for p in predictions}
    if not references:
        raise ValueError("no examples to score")
    em = f1 = 0.0
    for ref in references:
        if ref["idx"]["query"] in by_query:
            one_em, one_f1 = metrics.record_em_f1(by_query[ref["idx"]["query"]], ref["answers"])
            em, f1 = em + one_em, f1 + one_f1
    return {"exact_match": _fraction(em / len(references)), "f1": _fraction(f1 / len(references))}


class SuperGlue(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown SuperGLUE configuration {self.config_name!r}; valid: {', '.join(CONFIGS)}")
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
                                   features=_features(self.config_name))

    def _compute(self, predictions: Sequence[Any], references: Sequence[Any],
                 pair_keys: Optional[Sequence[Any]] = None) -> dict[str, float]:
        config = self.config_name
        if config == "multirc":
            return _multirc(predictions, references)
        if config == "record":
            return _record(predictions, references)
        if config == "axb":
            return {"matthews_correlation": _fraction(metrics.matthews(predictions, references))}
        if config == "cb":
            return {"accuracy": _fraction(metrics.accuracy(predictions, references)),
                    "f1": _fraction(metrics.f1_macro(predictions, references))}
        out = {"accuracy": _fraction(metrics.accuracy(predictions, references))}
        if config == "axg" and pair_keys is not None:
            out["gender_parity"] = _fraction(metrics.gender_parity(list(pair_keys), list(predictions)))
        return out
