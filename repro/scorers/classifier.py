"""CLS-FT: a classification head on the LM, the LM fine-tuned with it, over the task's plain input
(`Task.classifier_pattern`, no [MASK]). The scorer of every task under method style `classifier`, whatever
the task's kind, in two shapes:

- **labels** (BoolQ, CB, RTE, WiC, MultiRC, WSC): one input per example, a linear head with one output per
  label (`Task.labels`; WSC's are False/True: does the marked pronoun refer to the span in the input?),
  cross-entropy over the labels;
- **choices** (kind `candidates`, COPA): one input per candidate (the pattern's `{choice}` slot holds it), a
  head with one output scoring each input, cross-entropy over an example's candidates (a multiple-choice
  head, as Hugging Face's `*ForMultipleChoice`).

The head (dropout 0.1, as Hugging Face's sequence classifiers) reads the last hidden state at the [CLS]
position (masked LMs: the first token) or at the last real token (causal LMs): `repro.core.model.ClassifierLM`.
The head and the LM train at the LM's learning rate. Training examples: the task's
`classifier_train_examples` (WSC: every labelled example, not only the positives its span scorer trains on;
COPA: without the mirrored copies, which a choice-per-input head sees as duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from torch import nn

from repro.core.inference import classifier_logits, classifier_scores
from repro.core.model import ClassifierLM
from repro.core.template import Rendered
from repro.errors import ConfigError
from repro.scorers.base import Scorer, ScorerContext, register_scorer
from repro.scorers.classification import LabelledItem, label_indices
from repro.tasks.base import Example

CHOICE_SLOT = "choice"  # the classifier pattern's slot for one candidate (choice-shaped tasks)


def _read_position(ctx: ScorerContext) -> str:
    """Where the head reads, in the words `describe` uses."""
    return "last real token" if ctx.causal else "first token ([CLS])"


def _classifier_examples(ctx: ScorerContext, examples: Sequence[Example]) -> list[Example]:
    chosen = ctx.task.classifier_train_examples(examples)
    if not chosen:
        raise ConfigError(f"task {ctx.task.name!r}: none of the {len(examples)} training examples is labelled; "
                          "CLS-FT cannot train")
    return chosen


class ClassifierScorer(Scorer):
    """CLS-FT, labels shape: one input per example, one head output per label."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.ctx = ctx
        self.labels = list(ctx.task.labels)
        self.model = ClassifierLM(ctx.model, len(self.labels))

    def train_items(self, examples: Sequence[Example]) -> list[LabelledItem]:
        examples = _classifier_examples(self.ctx, examples)
        return [LabelledItem(self.ctx.render(ex), y) for ex, y in zip(examples, label_indices(self.ctx, examples))]

    def loss(self, items: list[LabelledItem]) -> torch.Tensor:
        logits = classifier_logits(self.model, [it.rendered for it in items])
        gold = torch.tensor([it.label for it in items], device=logits.device)
        return nn.functional.cross_entropy(logits, gold)

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[Any]:
        rendered = [self.ctx.render(ex) for ex in examples]
        logits = classifier_scores(self.model, rendered, batch_size=self.ctx.eval_batch_size, desc=desc,
                                   quiet=self.ctx.quiet)
        return [self.labels[i] for i in logits.argmax(dim=1).tolist()]

    def describe(self) -> dict[str, Any]:
        return {"scoring": f"linear head on the hidden state of the {_read_position(self.ctx)}",
                "labels": [str(x) for x in self.labels]}


@dataclass
class ChoiceItem:
    """A training item of a choice-shaped task: one rendered input per candidate and the gold candidate's index."""

    rendered: tuple[Rendered, ...]
    label: int


class ChoiceClassifierScorer(Scorer):
    """CLS-FT, choices shape: one input per candidate, one head output scoring it; predictions are the indices
    of the best candidates (as the candidate scorer's)."""

    def __init__(self, ctx: ScorerContext) -> None:
        if CHOICE_SLOT not in ctx.template.slots:
            raise ConfigError(f"task {ctx.task.name!r}: its classifier pattern must hold the candidate in a "
                              f"{{{CHOICE_SLOT}}} slot (one input per candidate)")
        self.ctx = ctx
        self.model = ClassifierLM(ctx.model, 1)

    def render(self, example: Example) -> tuple[Rendered, ...]:
        return tuple(self.ctx.render(replace(example, values={**example.values, CHOICE_SLOT: choice}))
                     for choice in example.candidates)

    def train_items(self, examples: Sequence[Example]) -> list[ChoiceItem]:
        return [ChoiceItem(self.render(ex), int(ex.label)) for ex in _classifier_examples(self.ctx, examples)]

    @staticmethod
    def _per_example(flat_scores: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """`(N,)` scores of the flattened candidates -> `(examples, most candidates)`, -inf where an example has
        fewer."""
        out = flat_scores.new_full((len(counts), max(counts)), float("-inf"))
        for row, part in enumerate(torch.split(flat_scores, list(counts))):
            out[row, : len(part)] = part
        return out

    def loss(self, items: list[ChoiceItem]) -> torch.Tensor:
        flat = [r for it in items for r in it.rendered]
        scores = self._per_example(classifier_logits(self.model, flat)[:, 0], [len(it.rendered) for it in items])
        gold = torch.tensor([it.label for it in items], device=scores.device)
        return nn.functional.cross_entropy(scores, gold)

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[Any]:
        per_example = [self.render(ex) for ex in examples]
        flat = [r for inputs in per_example for r in inputs]
        scores = classifier_scores(self.model, flat, batch_size=self.ctx.eval_batch_size, desc=desc,
                                   quiet=self.ctx.quiet)[:, 0]
        return self._per_example(scores, [len(inputs) for inputs in per_example]).argmax(dim=1).tolist()

    def describe(self) -> dict[str, Any]:
        return {"scoring": f"linear head (one output) on the hidden state of the {_read_position(self.ctx)} of each "
                           "candidate's input; the best-scoring candidate wins"}


def classifier_scorer(ctx: ScorerContext) -> Scorer:
    if ctx.template.has_target:
        raise ConfigError(f"CLS-FT reads no [MASK]; the classifier pattern of {ctx.task.name!r} has one")
    if ctx.task.kind == "candidates":
        return ChoiceClassifierScorer(ctx)
    if not ctx.task.labels:
        raise ConfigError(f"task {ctx.task.name!r} ({ctx.task.kind}) has no labels for a classification head")
    return ClassifierScorer(ctx)


register_scorer("classifier", classifier_scorer)
