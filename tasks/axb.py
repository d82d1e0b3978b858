"""AX-b, SuperGLUE's broad-coverage diagnostic: RTE-style pairs (`sentence1`, `sentence2`) evaluated with the
model trained on RTE (same setting, method, pattern and seed). Metric: Matthews correlation (x100)."""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import Example, TaskFiles
from repro.tasks.rte import Rte


class AxB(Rte):
    name = "axb"
    folder = "AX-b"
    paper_name = "AX-b"
    metrics = ("mcc",)
    in_paper_tables = False
    in_avg = False
    dev32_sha256 = None
    required_fields = ("sentence1", "sentence2", "label")
    trained_on = "rte"
    diagnostics = ()
    premise_field = "sentence1"
    hypothesis_field = "sentence2"

    def files(self) -> TaskFiles:
        return TaskFiles(fewshot_train=None, fewshot_dev=None, eval="superglue/AX-b/AX-b.jsonl", supervised_train=None)

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return {"mcc": metrics.matthews(predictions, self.golds(examples))}
