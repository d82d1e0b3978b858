"""WiC: is the word used in the same sense in both sentences? Labels `False` / `True`, verbalized No / Yes.

Patterns (both mark the target word, as PET and the authors do):
- manual `pet`: PET's pattern 0, `"sentence1" / "sentence2" Similar sense of "word"? [M] .`;
- ptuning `paper`: `sentence1 [SEP] sentence2 [P] *word* ? [M]` (the paper's pattern); `p2`, `p4`: 2 or 4
  prompt tokens.

The authors' text (fidelity item pattern_text=authors, `authors_patterns`): THUDM/P-tuning
PT-Fewshot/data_utils/task_pvps.py WicPVP marks the word as `"*" + word + " *"`, a space before the closing
star, and PET's `PVP.encode` tokenizes each part alone: pattern 1 has the marked word and "?" as ONE part, the
searched patterns the marked word as one part and "?" as the next. A template slot is tokenized alone too, so
`example` prepares both parts as slot values (`marked_word`, `marked_question`). PET's pattern 0 (timoschick/pet
pet/pvp.py WicPVP.get_parts, the manual `pet` pattern's source) writes `'" Similar sense of "' + word + '"?'` as ONE
part, so the quotes hug the word; its authors' text reads that part as one slot value (`sense_question`).
"""

from __future__ import annotations

from typing import Any, Sequence

from repro import metrics
from repro.tasks.base import ClassificationTask, Example, label_index, prompt_length_variants

PAPER = "{sentence1:shorten} [SEP] {sentence2:shorten} [P] *{word}* ? [MASK]"


class Wic(ClassificationTask):
    name = "wic"
    folder = "WiC"
    paper_name = "WiC"
    large_train_set = True
    dev32_sha256 = "3df4ca565f109be9476caa51884ba13c5f2a33c939898cf80bb53e09fdc73062"
    required_fields = ("word", "sentence1", "sentence2", "label")
    labels = (False, True)
    verbalizer = {False: "No", True: "Yes"}
    manual_patterns = {"pet": '"{sentence1:shorten}" / "{sentence2:shorten}" Similar sense of "{word}"? [MASK] .'}
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # WicPVP (its word marker is "*" + word + " *")
        "s1": "{sentence1:shorten} [SEP] {sentence2:shorten} [P] *{word} * ? [MASK]",
        "s2": "{sentence1:shorten} [SEP] {sentence2:shorten} [P] *{word} * ? [P] [MASK]",
        "s3": "{sentence1:shorten} [P] {sentence2:shorten} [P] *{word} * ? [P] [MASK]",
    }
    authors_patterns = {
        "paper": "{sentence1:shorten} [SEP] {sentence2:shorten} [P] {marked_question} [MASK]",
        "s1": "{sentence1:shorten} [SEP] {sentence2:shorten} [P] {marked_word} ? [MASK]",
        "s2": "{sentence1:shorten} [SEP] {sentence2:shorten} [P] {marked_word} ? [P] [MASK]",
        "s3": "{sentence1:shorten} [P] {sentence2:shorten} [P] {marked_word} ? [P] [MASK]",
        "pet": '"{sentence1:shorten}" / "{sentence2:shorten}{sense_question} [MASK] .',
    }
    classifier_pattern = "{word} : {sentence1:shorten} [SEP] {sentence2:shorten}"

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        word = str(row["word"])
        marked = "*" + word + " *"  # WicPVP's marker, one part for PET's encoder (authors_patterns)
        values = {"word": word, "sentence1": str(row["sentence1"]), "sentence2": str(row["sentence2"]),
                  "marked_word": marked, "marked_question": marked + "?",
                  "sense_question": '" Similar sense of "' + word + '"?'}  # PET's one part (authors' `pet`)
        return [Example(uid, values, label_index(self, row.get("label"), uid))]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return {"acc": metrics.accuracy(predictions, self.golds(examples))}
