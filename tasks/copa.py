"""COPA: which of two alternatives is the cause (or the effect) of a premise. Each choice is a multi-token
answer scored at the target; the higher-scoring choice wins (metric: accuracy).

Preprocessing and patterns follow PET (`CopaPVP`, `CopaProcessor`) and the P-tuning few-shot code:
- the premise loses its final punctuation; each choice gets its first letter lower-cased and its final
  punctuation removed, both where it is quoted in the pattern and where it is scored as the answer;
- `manual` (PET's pattern 0, used by MP and MP-FT): `"c1" or "c2"? premise because [MASK].` for a cause
  question, `"c1" or "c2"? premise, so [MASK].` for an effect question;
- `ptuning` `paper` (the paper's few-shot pattern, `pattern_id 1` of THUDM/P-tuning): `c1 or c2 ? premise
  because|so [P] [MASK] .`; `p2`, `p4`: the same with 2 or 4 prompt tokens;
- training uses PET's mirrored copies too: every training example is added a second time with the two
  choices swapped (and the label flipped), so that the position of the right choice in the text carries no
  signal;
- `classifier` (CLS-FT, `repro.scorers.classifier`): `premise because|so choice`, one input per choice, scored
  by a one-output head; no mirrored copies (each input holds one choice, so a copy would repeat the example).
The [MASK] comes at the end of both patterns (only "." follows), so a causal LM produces the choice right
where a masked LM fills it; the "." after it is invisible to a causal LM and dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from repro import metrics
from repro.errors import DataError
from repro.tasks.base import Example, Task, label_index, prompt_length_variants, strip_final_punctuation

QUESTIONS = ("cause", "effect")
PAPER = "{choice1} or {choice2} ? {premise:shorten} {connective} [P] [MASK] ."


def lowercase_first(text: str) -> str:
    """PET's `lowercase_first`: the choice continues a sentence, so its first letter is lower-cased."""
    return text[:1].lower() + text[1:]


class Copa(Task):
    name = "copa"
    folder = "COPA"
    paper_name = "COPA"
    dev32_sha256 = "eb43b015d061738467f284c60049ef0afcaf707ec8e528ab3c5c4285a5f5618a"
    kind = "candidates"
    required_fields = ("premise", "choice1", "choice2", "question")
    labels = (0, 1)
    manual_patterns = {"pet": '"{choice1}" or "{choice2}"? {premise:shorten}{pet_connective} [MASK].'}
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # CopaPVP (the fourth comment has a stray comma; read as premise, joiner, the, mask)
        "s1": "{choice1} or {choice2} ? [P] {premise:shorten} {connective} [P] [MASK]",
        "s2": "{choice1} or {choice2} ? {premise:shorten} {connective} [P] [MASK]",
        "s3": '"{choice1}" or "{choice2}"? [P] {premise:shorten} [P] {connective} [MASK]',
        "s4": '"{choice1}" or "{choice2}"? {premise:shorten} {connective} [P] [MASK]',
    }
    classifier_pattern = "{premise:shorten} {connective} {choice}"  # CLS-FT: one sentence per choice
    notes = (
        "choices lower-cased at the first letter and stripped of final punctuation, premise stripped of final "
        "punctuation (PET); training adds PET's mirrored copies (choices swapped, label flipped)",
    )

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        question = row["question"]
        if question not in QUESTIONS:
            raise DataError(f"field 'question' is {question!r}; valid: {', '.join(QUESTIONS)}")
        label = label_index(self, row.get("label"), "")
        choices = tuple(strip_final_punctuation(lowercase_first(str(row[k]).strip())) for k in ("choice1", "choice2"))
        if not all(choices):
            raise DataError("a choice is empty after removing its final punctuation")
        values = {
            "premise": strip_final_punctuation(str(row["premise"]).strip()),
            "choice1": choices[0],
            "choice2": choices[1],
            "connective": "because" if question == "cause" else "so",
            # PET joins the connective to the premise as " because" / ", so" (no comma before "because").
            "pet_connective": " because" if question == "cause" else ", so",
        }
        return [Example(uid=uid, values=values, label=label, candidates=choices, meta={"question": question})]

    def train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """The training examples plus PET's mirrored copies (choices swapped, label flipped)."""
        mirrored = [
            replace(
                ex,
                uid=f"{ex.uid}(mirrored)",
                values={**ex.values, "choice1": ex.values["choice2"], "choice2": ex.values["choice1"]},
                candidates=(ex.candidates[1], ex.candidates[0]),
                label=1 - ex.label,
                meta={**ex.meta, "mirrored": True},
            )
            for ex in examples
            if ex.label is not None
        ]
        return [ex for ex in examples if ex.label is not None] + mirrored

    def classifier_train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """CLS-FT reads each choice on its own input, so a mirrored copy would only repeat the example."""
        return [ex for ex in examples if ex.label is not None]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """Accuracy of the predicted choice indices (0 or 1)."""
        return {"acc": metrics.accuracy(list(predictions), [ex.label for ex in examples])}
