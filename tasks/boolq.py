"""BoolQ: a yes/no question about a passage. Labels `False` / `True`, verbalized No / Yes (PET's VERBALIZER_A).

Patterns:
- manual `pet`: PET's pattern 0, `passage . Question: question ? Answer: [M] .`;
- ptuning `paper`: `passage . [P] Question: question ? Answer: [M] .` (THUDM/P-tuning BoolQPVP pattern 1);
  `p2`, `p4`: 2 or 4 prompt tokens.
The full training set is not in the shared mirror (PARTIAL.tsv): the supervised setting needs it fetched.
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import ClassificationTask, Example, label_index, prompt_length_variants

PAPER = "{passage:shorten} . [P] Question: {question:shorten} ? Answer: [MASK] ."


class BoolQ(ClassificationTask):
    name = "boolq"
    folder = "BoolQ"
    paper_name = "BoolQ"
    large_train_set = True
    paper_fewshot_steps = 250
    cpu_eval_subset = 500
    dev32_sha256 = "0af324b658a72fdd7767aa3c27c1dfafbc03e8e987a148b29e42a72d84b9f9e3"
    required_fields = ("passage", "question", "label")
    labels = (False, True)
    verbalizer = {False: "No", True: "Yes"}
    manual_patterns = {"pet": "{passage:shorten} . Question: {question:shorten} ? Answer: [MASK] ."}
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # BoolQPVP
        "s1": "{passage:shorten} . [P] Question: {question:shorten} ? [P] Answer: [MASK]",
        "s2": "{passage:shorten} . [P] {question:shorten} ? [P] [MASK]",
        "s3": "{passage:shorten} [P] {question:shorten} ? [P] [MASK]",
    }
    classifier_pattern = "{question:shorten} [SEP] {passage:shorten}"

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        values = {"passage": str(row["passage"]), "question": str(row["question"])}
        return [Example(uid, values, label_index(self, row.get("label"), uid))]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return {"acc": metrics.accuracy(predictions, self.golds(examples))}
