"""CB (CommitmentBank): entailment, contradiction or neutral; verbalized Yes / No / Maybe (PET's CbPVP).

Patterns:
- manual `pet`: PET's pattern 0 (inherited from RTE in PET), `"hypothesis" ? [SEP] [MASK], "premise"`; causal
  backbones default to `anchors` (the paper's pattern without its prompt token): the premise after [MASK]
  is invisible to them.
- ptuning `paper`: `premise [SEP] hypothesis ? [P] answer: [M]` (THUDM/P-tuning CbPVP pattern 1: the
  hypothesis as in the file, not shortened); `p2`, `p4`: 2 or 4 prompt tokens.
Metrics: accuracy and macro-F1 over the three classes.
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import Example, prompt_length_variants
from repro.tasks.rte import Rte

PAPER = "{premise:shorten} [SEP] {hypothesis} ? [P] answer: [MASK]"


class Cb(Rte):
    name = "cb"
    folder = "CB"
    paper_name = "CB"
    metrics = ("acc", "f1_macro")
    paper_fewshot_steps = 250
    dev32_sha256 = "ec7e1bfe37a7ea4514fc2335bfa3b35be77bfe084aae2e7ca55f765aaee41337"
    labels = ("contradiction", "entailment", "neutral")
    verbalizer = {"contradiction": "No", "entailment": "Yes", "neutral": "Maybe"}
    manual_patterns = {
        "pet": '"{hypothesis_bare:shorten}" ? [SEP] [MASK], "{premise:shorten}"',
        "anchors": "{premise:shorten} [SEP] {hypothesis} ? answer: [MASK]",
    }
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # CbPVP ("the the": two prompt tokens)
        "s1": "{premise:shorten} question: {hypothesis:shorten} true, false or neither? answer: [P] [MASK]",
        "s2": PAPER,
        "s3": "{premise:shorten} [P] {hypothesis:shorten} ? Answer: [MASK]",
        "s4": "{premise:shorten} [P*2] question: {hypothesis:shorten} ? [P*2] answer: [MASK]",
        "s5": "{premise:shorten} [SEP] {hypothesis:shorten} ? [P] [MASK]",
    }
    diagnostics = ()

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        golds = self.golds(examples)
        return {"acc": metrics.accuracy(predictions, golds), "f1_macro": metrics.f1_macro(predictions, golds)}
