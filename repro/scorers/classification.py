"""Classification tasks (BoolQ, CB, RTE, WiC, MultiRC, AX-b, AX-g): verbalizer scoring.

Verbalizer scoring (MP, MP-FT, P-tuning, PET's way): each label has one word (`Task.verbalizer`); an
example's score for a label is
- masked LMs: the logit of the word's token at [MASK] (the word must be one token: PET's rule; otherwise a
  ConfigError names the word and its pieces);
- causal LMs: the word as the next token(s) after the pattern. When every word is one token, one forward
  pass reads all candidates' logits at the last position (as a masked LM reads [MASK]); when a word has
  several tokens, each label's word is scored by its summed token log-probabilities, one forward per label.
Words are tokenized as they stand in the pattern (with the leading space where [MASK] follows a space).
Training: cross-entropy over the labels' scores (PET's `convert_mlm_logits_to_cls_logits` + CE); prediction:
the best-scoring label.

CLS-FT (a classification head instead of a verbalizer) is `repro.scorers.classifier`.

This module decides what is scored (labels, words, the rule); every number comes from `repro.core.inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
from torch import nn

from repro.core.inference import (
    answer_log_probs,
    argmax_candidates,
    candidate_logits_at_target,
    summed_answer_log_probs,
)
from repro.core.model import PromptedLM
from repro.core.template import Rendered, word_token_ids
from repro.errors import ConfigError, DataError
from repro.scorers.base import Scorer, ScorerContext, register_scorer
from repro.tasks.base import Example


@dataclass
class LabelledItem:
    """A training item: the rendered input (one per label for multi-token words) and the gold label index."""

    rendered: Union[Rendered, tuple[Rendered, ...]]
    label: int


def label_indices(ctx: ScorerContext, examples: Sequence[Example]) -> list[int]:
    """Each example's gold label as an index into `Task.labels` (an unlabelled example is a DataError)."""
    labels = list(ctx.task.labels)
    out = []
    for ex in examples:
        if ex.label not in labels:
            raise DataError(f"{ex.uid}: label {ex.label!r} is not one of {labels} (an unlabeled file cannot train)")
        out.append(labels.index(ex.label))
    return out


class VerbalizerScorer(Scorer):
    """Scores each label by its verbalizer word at the target (see the module docstring)."""

    def __init__(self, ctx: ScorerContext) -> None:
        if not ctx.template.has_target:
            raise ConfigError(f"pattern {ctx.pattern!r} of task {ctx.task.name!r} has no [MASK] to read the verbalizer at")
        self.ctx = ctx
        self.model: PromptedLM = ctx.model
        self.labels = list(ctx.task.labels)
        space = ctx.template.target_space_before
        tok = ctx.tokenizer
        self.words = [ctx.task.verbalizer[label] for label in self.labels]
        self.word_ids = [word_token_ids(tok, word, space_before=space) for word in self.words]
        multi = {w: ids for w, ids in zip(self.words, self.word_ids) if len(ids) > 1}
        if multi and not ctx.causal:
            detail = "; ".join(f"{w!r} -> {tok.convert_ids_to_tokens(ids)}" for w, ids in multi.items())
            raise ConfigError(f"task {ctx.task.name!r}: verbalizer word(s) of several tokens for this tokenizer "
                              f"({detail}); a masked LM reads one token at [MASK]")
        if len({tuple(ids) for ids in self.word_ids}) < len(self.word_ids):
            raise ConfigError(f"task {ctx.task.name!r}: two labels' words tokenize alike: {self.words}")
        self.single_token = not multi
        self.candidate_ids = torch.tensor([ids[0] for ids in self.word_ids]) if self.single_token else None

    def train_items(self, examples: Sequence[Example]) -> list[LabelledItem]:
        items = []
        examples = self.ctx.task.train_examples(examples)
        for ex, y in zip(examples, label_indices(self.ctx, examples)):
            if self.single_token:
                items.append(LabelledItem(self.ctx.render(ex, target_ids=self.word_ids[y]), y))
            else:
                items.append(LabelledItem(tuple(self.ctx.render(ex, target_ids=ids) for ids in self.word_ids), y))
        return items

    def label_scores(self, items: Sequence[LabelledItem]) -> torch.Tensor:
        """`(B, labels)` scores with gradients: logits of the words (one token) or summed log-probs (several)."""
        if self.single_token:
            return candidate_logits_at_target(self.model, [it.rendered for it in items], self.candidate_ids)
        columns = [summed_answer_log_probs(self.model, [it.rendered[c] for it in items])
                   for c in range(len(self.labels))]
        return torch.stack(columns, dim=1)

    def loss(self, items: list[LabelledItem]) -> torch.Tensor:
        scores = self.label_scores(items)
        gold = torch.tensor([it.label for it in items], device=scores.device)
        return nn.functional.cross_entropy(scores, gold)

    def row_losses(self, items: list[LabelledItem]) -> torch.Tensor:
        """Per-example CE over the labels' scores (their mean is `loss`)."""
        scores = self.label_scores(items)
        gold = torch.tensor([it.label for it in items], device=scores.device)
        return nn.functional.cross_entropy(scores, gold, reduction="none")

    def joint_key(self) -> Any:
        """The model and the verbalizer's token ids: same key, same answer space."""
        return ("verbalizer", id(self.model), tuple(map(str, self.labels)), tuple(tuple(ids) for ids in self.word_ids))

    def eval_inputs(self, examples: Sequence[Example]) -> list[Any]:
        """One rendered input per example (one token per word), else one per example and label."""
        if self.single_token:
            return [self.ctx.render(ex) for ex in examples]
        return [tuple(self.ctx.render(ex, target_ids=ids) for ids in self.word_ids) for ex in examples]

    @torch.no_grad()
    def predict_inputs(self, inputs: Sequence[Any], *, desc: str = "eval") -> list[Any]:
        if not inputs:
            return []
        ctx = self.ctx
        if self.single_token:
            best = argmax_candidates(self.model, list(inputs), self.candidate_ids, batch_size=ctx.eval_batch_size,
                                     desc=desc, quiet=ctx.quiet).tolist()
        else:
            flat = [r for per_label in inputs for r in per_label]
            log_probs = answer_log_probs(self.model, flat, batch_size=ctx.eval_batch_size, desc=desc, quiet=ctx.quiet)
            sums = torch.tensor([sum(lp) for lp in log_probs]).view(len(inputs), len(self.labels))
            best = sums.argmax(dim=1).tolist()
        return [self.labels[i] for i in best]

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[Any]:
        return self.predict_inputs(self.eval_inputs(examples), desc=desc)

    def describe(self) -> dict[str, Any]:
        tok = self.ctx.tokenizer
        return {
            "scoring": ("logit of the verbalizer token at the target" if self.single_token
                        else "summed log-probability of the verbalizer tokens after the pattern"),
            "verbalizer": {str(label): {"word": w, "tokens": tok.convert_ids_to_tokens(ids)}
                           for label, w, ids in zip(self.labels, self.words, self.word_ids)},
        }


def classification_scorer(ctx: ScorerContext) -> Scorer:
    return VerbalizerScorer(ctx)


register_scorer("classification", classification_scorer)
