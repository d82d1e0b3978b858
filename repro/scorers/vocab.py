"""LAMA's answer kind `vocab`: the answer is one token of an allowed vocabulary at the target.

Prediction is the argmax of the LM's logits within the allowed ids (the LM head is sliced to them, see
`repro.core.inference.argmax_candidates`); training is the cross-entropy of the object's token over the full
vocabulary (the authors' LAMA code trains the same way). `predict` returns token ids, which the task
(`tasks.lama.Lama.score`) compares with the objects' ids.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from repro.core.inference import argmax_candidates, target_loss, target_row_losses
from repro.core.template import Rendered
from repro.errors import ConfigError
from repro.scorers.base import Scorer, ScorerContext, register_scorer
from repro.tasks.base import Example


class VocabScorer(Scorer):
    """Argmax within `ctx.task.vocab` at the target; CE of the gold token for training."""

    def __init__(self, ctx: ScorerContext) -> None:
        if getattr(ctx.task, "vocab", None) is None:
            raise ConfigError(f"task {ctx.task.name!r} of kind 'vocab' needs an allowed vocabulary")
        if not ctx.template.has_target:
            raise ConfigError(f"template {ctx.template} has no [MASK] to read the answer at")
        self.ctx = ctx
        self.model = ctx.model
        self.vocab_ids = ctx.task.vocab.tensor()

    def render(self, example: Example) -> Rendered:
        return self.ctx.render(example, target_ids=[self.ctx.task.vocab.id_of(example.label)])

    def train_items(self, examples: Sequence[Example]) -> list[Rendered]:
        """Rendered facts for training. Option `label_shift=authors` (causal LMs) trains the logits one position
        before the one `predict` reads, as THUDM/P-tuning LAMA/p_tuning/modeling.py `gpt_out` does: it puts the
        label on the query's last token and GPT-2's loss shifts labels by one, while hit@1 reads the last
        position's logits."""
        items = [self.render(ex) for ex in examples]
        if self.ctx.options.get("label_shift", "aligned") == "authors" and self.model.backbone.is_causal:
            items = [replace(r, target_positions=[p - 1 for p in r.target_positions]) for r in items]
            if any(p < 0 for r in items for p in r.target_positions):
                raise ConfigError("label_shift=authors needs two tokens before the target")
        return items

    def loss(self, items: list[Rendered]) -> torch.Tensor:
        return target_loss(self.model, items)

    def row_losses(self, items: list[Rendered]) -> torch.Tensor:
        """Per-fact CE (one target token each, so their mean is `loss`)."""
        return target_row_losses(self.model, items)

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[int]:
        return self.predict_inputs(self.eval_inputs(examples), desc=desc)

    def eval_inputs(self, examples: Sequence[Example]) -> list[Rendered]:
        return [self.render(ex) for ex in examples]

    @torch.no_grad()
    def predict_inputs(self, rendered: Sequence[Rendered], *, desc: str = "eval") -> list[int]:
        if not rendered:
            return []
        best = argmax_candidates(self.model, rendered, self.vocab_ids, batch_size=self.ctx.eval_batch_size,
                                 desc=desc, quiet=self.ctx.quiet)
        return self.vocab_ids[best].tolist()

    def joint_key(self) -> Any:
        """The model and the allowed vocabulary (one object shared by a run's relations)."""
        return ("vocab", id(self.model), id(self.ctx.task.vocab))

    def describe(self) -> dict[str, Any]:
        return {"scoring": "argmax of the logits within the allowed vocabulary at the target",
                "vocabulary": self.ctx.task.vocab.description}


register_scorer("vocab", VocabScorer)
