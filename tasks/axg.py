"""AX-g (Winogender): RTE-style pairs that differ only in the gender of a pronoun, evaluated with the model
trained on RTE. Metrics: accuracy and gender parity (the share of male/female pairs predicted alike).

Pairs are consecutive lines (idx 2k, 2k+1), the official scorer's rule; their shared hypothesis is the
example's `group`, which `metrics.gender_parity` checks (the file's `pair_id` is unique per line).
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import Example, TaskFiles
from repro.tasks.rte import Rte


class AxG(Rte):
    name = "axg"
    folder = "AX-g"
    paper_name = "AX-g"
    metrics = ("acc", "gender_parity")
    in_paper_tables = False
    in_avg = False
    dev32_sha256 = None
    required_fields = ("premise", "hypothesis", "label")
    trained_on = "rte"
    diagnostics = ()

    def files(self) -> TaskFiles:
        return TaskFiles(fewshot_train=None, fewshot_dev=None, eval="superglue/AX-g/AX-g.jsonl", supervised_train=None)

    def group_of(self, row: dict[str, Any]) -> Any:
        return str(row["hypothesis"])

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        golds = self.golds(examples)
        return {"acc": metrics.accuracy(predictions, golds),
                "gender_parity": metrics.gender_parity([ex.group for ex in examples], predictions)}
