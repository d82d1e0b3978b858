"""MultiRC: is this answer option right for the question about the passage? One example per answer option,
label 0 / 1 verbalized No / Yes; every option carries its question's id, unique across passages
("<passage idx>-<question idx>": MultiRC restarts question numbers per passage), so that EM can group them.

Patterns:
- manual `pet`: PET's pattern 0, `passage . Question: question ? Is it answer ? [M] .`;
- ptuning `paper`: `passage . Question: question ? Is it answer ? [P] [M] .` (THUDM/P-tuning MultiRcPVP
  pattern 1); `p2`, `p4`: 2 or 4 prompt tokens.
Metrics: EM (all options of a question right) and F1a (binary F1 over all options), PET's definitions.
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.errors import DataError
from repro.tasks.base import ClassificationTask, Example, label_index, prompt_length_variants

PAPER = "{passage:shorten} . Question: {question} ? Is it {answer} ? [P] [MASK] ."


class MultiRc(ClassificationTask):
    name = "multirc"
    folder = "MultiRC"
    paper_name = "MultiRC"
    metrics = ("em", "f1a")
    large_train_set = True
    paper_fewshot_steps = 250
    paper_max_length = 512  # as the authors' script
    cpu_eval_subset = 500
    shared_prefixes = True  # every option of every question repeats the passage
    dev32_sha256 = "3734d2cac8d1e8d13e2f5e13bec727be7576b45453e9fd765e2075e163f9653d"
    required_fields = ("idx", "passage")
    labels = (0, 1)
    verbalizer = {0: "No", 1: "Yes"}
    manual_patterns = {"pet": "{passage:shorten} . Question: {question} ? Is it {answer} ? [MASK] ."}
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # MultiRcPVP
        "s1": "{passage:shorten} Question: {question} ? Is it {answer} ? [P] [MASK]",
        "s2": "{passage:shorten} Question: {question} ? [P] {answer} ? [P] [MASK]",
    }
    classifier_pattern = "{passage:shorten} [SEP] {question} {answer}"

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        passage = row["passage"]
        if not isinstance(passage, dict):
            raise DataError(f"field 'passage' is a {type(passage).__name__}, expected an object with 'text', 'questions'")
        examples = []
        for qi, question in enumerate(passage["questions"]):
            group = f"{row['idx']}-{question['idx']}"
            for ai, answer in enumerate(question["answers"]):
                if "label" not in answer:
                    raise DataError(f"missing field 'label' in passage.questions[{qi}].answers[{ai}]")
                values = {"passage": str(passage["text"]), "question": str(question["question"]),
                          "answer": str(answer["text"])}
                label = label_index(self, answer["label"], f"{uid} question {qi} answer {ai}")
                examples.append(Example(f"{uid}#q{qi}a{ai}", values, label, group=group))
        return examples

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return metrics.multirc_em_f1a([ex.group for ex in examples], predictions, self.golds(examples))
