"""RTE: does the premise entail the hypothesis? Labels `entailment` / `not_entailment`, verbalized Yes / No.

Patterns (the hypothesis loses its final punctuation before the "?" anchor, as in PET's and the authors' code):
- manual `pet`: PET's pattern 0, `"hypothesis" ? [SEP] [MASK], "premise"` (PET puts the two halves in
  two segments; [SEP] stands for that boundary). A causal LM cannot see the premise after [MASK], so causal
  backbones default to `anchors`: the paper's pattern without its prompt token.
- ptuning `paper`: the paper's few-shot pattern `premise Question: hypothesis ? [P] Answer: [M] .`
  (THUDM/P-tuning, PT-Fewshot RtePVP pattern 1); `p2`, `p4`: the same with 2 or 4 prompt tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import ClassificationTask, Example, label_index, prompt_length_variants, strip_final_punctuation

PAPER = "{premise:shorten} Question: {hypothesis_bare:shorten} ? [P] Answer: [MASK] ."


class Rte(ClassificationTask):
    name = "rte"
    folder = "RTE"
    paper_name = "RTE"
    dev32_sha256 = "a3ba6200d2f27691d927ab97d387292b045316956f877fbfccc9a4658af2b351"
    required_fields = ("premise", "hypothesis", "label")
    labels = ("not_entailment", "entailment")
    verbalizer = {"not_entailment": "No", "entailment": "Yes"}
    manual_patterns = {
        "pet": '"{hypothesis_bare:shorten}" ? [SEP] [MASK], "{premise:shorten}"',
        "anchors": "{premise:shorten} Question: {hypothesis_bare:shorten} ? Answer: [MASK] .",
    }
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # RtePVP
        "s1": "{premise:shorten} [SEP] {hypothesis_bare:shorten} ? [P] [MASK]",
        "s2": "{premise:shorten} [SEP] {hypothesis_bare:shorten} ? [P] answer: [MASK]",
        "s3": "{premise:shorten} Question: {hypothesis_bare:shorten} ? [P] [MASK]",
    }
    classifier_pattern = "{premise:shorten} [SEP] {hypothesis:shorten}"
    diagnostics = ("axb", "axg")

    premise_field = "premise"
    hypothesis_field = "hypothesis"

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        premise, hypothesis = str(row[self.premise_field]), str(row[self.hypothesis_field])
        values = {"premise": premise, "hypothesis": hypothesis, "hypothesis_bare": strip_final_punctuation(hypothesis)}
        return [Example(uid, values, label_index(self, row.get("label"), uid), group=self.group_of(row))]

    def group_of(self, row: dict[str, Any]) -> Any:
        return None

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return {"acc": metrics.accuracy(predictions, self.golds(examples))}
