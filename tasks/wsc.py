"""WSC (SuperGLUE's Winograd schema challenge, the `WSC` data as shipped, *not* `wsc.fixed`): does the marked
pronoun refer to the candidate noun phrase `span1_text`? Metric: accuracy.

Following PET (`WscProcessor`, `WscPVP`, `WscTaskHelper`):
- the pronoun index of a few examples is off by one word; it is repaired the way PET does (look one word
  to the left and right; split a word that merely starts with the pronoun, e.g. "him." -> "him" ".");
- the pronoun is marked with asterisks in the text (`*him*`) and in the pattern;
- training uses only the examples whose label is true, with `span1_text` (the noun the pronoun refers to)
  as the target: the model learns to *produce* the referent (FewGLUE's 32 WSC examples are all positive);
- evaluation generates a span at the target and applies PET's rule (`pet_span_match`): the prediction says
  "refers to span1" when the predicted words are a subset of span1's words or vice versa; that boolean is the
  predicted label, compared with the gold label.
Patterns: `manual` `pet` is PET's pattern 0, `text The pronoun '*p*' refers to [MASK].`, where PET tokenizes
"The pronoun '*p*' refers to" as one part: the stars and quotes hug the pronoun. A template slot is tokenized
on its own (a SentencePiece tokenizer would start it with a word boundary, "▁"), so the marked pronoun
`'*p*'` is one slot value (`pronoun_quoted`) between whitespace, which tokenizes as PET's one part does;
`ptuning` `paper` the paper's (`pattern_id 2` of THUDM/P-tuning,
whose two prompt tokens stand where that code writes "the": `[P] text [P] pronoun '*p*' refers to [MASK].`);
`p2`, `p4`: the same with 2 or 4 tokens per prompt run.
CLS-FT (`repro.scorers.classifier`) is a binary head over `text [SEP] pronoun : span1_text` (the pronoun marked in
the text as above), trained on every labelled example, positive and negative; its prediction is the label itself.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from repro import metrics
from repro.errors import DataError
from repro.tasks.base import Example, Task, label_index, prompt_length_variants

RULE = (
    "PET's WSC rule: lower-case the predicted span and span1_text, split both into words at every non-letter "
    "(re.split('[^a-zA-Z]')), drop empty words; the prediction refers to span1 when every predicted word is "
    "one of span1's words or every span1 word is one of the predicted words (an empty prediction therefore "
    "matches, as in PET); accuracy compares that boolean with the gold label"
)


PAPER = "[P] {text:shorten} [P] pronoun '*{pronoun}*' refers to [MASK]."


def _words(text: str) -> list[str]:
    return [w for w in re.split("[^a-zA-Z]", text.lower().strip()) if w]


def pet_span_match(predicted: str, candidate: str) -> bool:
    """PET's rule (`WscTaskHelper.eval_step`): word-subset match either way after normalisation."""
    pred, gold = _words(predicted), _words(candidate)
    return all(w in gold for w in pred) or all(w in pred for w in gold)


def mark_pronoun(text: str, span2_index: int, span2_text: str) -> str:
    """The text with the pronoun wrapped in asterisks, after PET's repair of a misaligned pronoun index."""
    words = text.split()
    if not 0 <= span2_index < len(words):
        raise DataError(f"span2_index {span2_index} is outside the text ({len(words)} words)")
    if words[span2_index] != span2_text:
        for offset in (-1, 1):
            if 0 <= span2_index + offset < len(words) and words[span2_index + offset] == span2_text:
                span2_index += offset
        word = words[span2_index]
        if word != span2_text and word.startswith(span2_text):
            words[span2_index : span2_index + 1] = [span2_text, word[len(span2_text):]]
    if words[span2_index] != span2_text:
        raise DataError(f"span2_text {span2_text!r} is not at word {span2_index} (found {words[span2_index]!r})")
    words[span2_index] = f"*{words[span2_index]}*"
    return " ".join(words)


class Wsc(Task):
    name = "wsc"
    folder = "WSC"
    paper_name = "WSC"
    dev32_sha256 = "2bbaca5c995778e7e14f389f1fe9a4be9a58d99e66db0d73d868ab66564b9da7"
    kind = "span"
    required_fields = ("text", "target")
    labels = (False, True)
    manual_patterns = {"pet": "{text:shorten} The pronoun {pronoun_quoted} refers to [MASK]."}
    ptuning_patterns = {"paper": PAPER, **prompt_length_variants(PAPER)}
    searched_patterns = {  # WscPVP
        "s1": "{text:shorten} [P] '*{pronoun}*' [P] [MASK]",
        "s2": "{text:shorten} [P] pronoun '*{pronoun}*' refers to [MASK]",
        "s3": "{text:shorten} [P] pronoun '*{pronoun}*' [P] [MASK]",
        "s4": "{text:shorten} [P] pronoun '*{pronoun}*' refers to [P] [MASK]",
    }
    classifier_pattern = "{text:shorten} [SEP] {pronoun} : {span1}"  # CLS-FT: does the marked pronoun refer to span1?
    notes = (
        "data: SuperGLUE WSC as shipped (superglue/WSC, fewglue/WSC), not wsc.fixed",
        "pronoun marked *like this* in the text, its index repaired as PET does; training on the positive "
        "examples only (target span1_text); CLS-FT on every labelled example",
        RULE,
    )

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        target = row["target"]
        for key in ("span1_text", "span2_index", "span2_text"):
            if key not in target:
                raise DataError(f"missing field 'target.{key}'")
        label = label_index(self, row.get("label"), "")
        text = mark_pronoun(str(row["text"]), int(target["span2_index"]), str(target["span2_text"]))
        pronoun, span1 = str(target["span2_text"]), str(target["span1_text"])
        values = {"text": text, "pronoun": pronoun, "pronoun_quoted": f"'*{pronoun}*'", "span1": span1}
        return [Example(uid=uid, values=values, label=label, candidates=(span1,))]

    def train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """PET trains on the positive examples only: the target is the referent, span1_text."""
        return [ex for ex in examples if ex.label is True]

    def classifier_train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """CLS-FT classifies (text, span1) pairs as referent or not: every labelled example trains it."""
        return [ex for ex in examples if ex.label is not None]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """`predictions`: the predicted span texts, each judged by PET's rule against span1_text, or (CLS-FT) the
        predicted labels themselves."""
        judged = [p if isinstance(p, bool) else pet_span_match(str(p), ex.candidates[0])
                  for p, ex in zip(predictions, examples)]
        return {"acc": metrics.accuracy(judged, [ex.label for ex in examples])}
