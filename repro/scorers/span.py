"""The WSC span scorer (task kind `span`): train to produce the referent (span1_text) at the target; predict a
span of the gold span's length, which the task judges against span1_text (PET's rule).

Prediction: a masked LM fills as many masks as the gold span has tokens and takes the argmax token at each
(one pass; PET filled them most-confident-first; fidelity item `wsc_masks=pet` adds PET's extra masks); a causal LM generates that many
tokens greedily after the pattern, on the pattern's key/value cache. Training: cross-entropy of the
referent's tokens (PET's masked-LM loss on the positive examples). The decoding and the loss are read from
`repro.core.inference`; this module renders the inputs and turns tokens back into text.
"""

from __future__ import annotations

import random
from typing import Any, Optional, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.backbone import BackboneKind
from repro.core.inference import length_batches, predict_span_tokens, target_loss
from repro.core.model import PromptedLM
from repro.core.template import Rendered, Template, TemplateError, word_token_ids
from repro.errors import ConfigError
from repro.scorers.base import Scorer, ScorerContext, register_scorer, require_target, scorer_options, training_examples
from repro.tasks.base import Example


def render_span_input(template: Template, tokenizer, example: Example, n_tokens: int, *, causal: bool,
                      max_length: Optional[int], target_ids: Optional[Sequence[int]] = None) -> Rendered:
    """The input for predicting (no `target_ids`) or training on (`target_ids`) an `n_tokens` span."""
    try:
        if causal and target_ids is None:  # the pattern up to the span: the dummy target token is not in the input
            return template.render(tokenizer, example.values, causal=True, target_ids=[0], max_length=max_length)
        return template.render(tokenizer, example.values, causal=causal, target_ids=target_ids,
                               target_len=n_tokens, max_length=max_length)
    except TemplateError as err:
        raise TemplateError(
            f"{example.uid}: span {example.candidates[0]!r} ({n_tokens} tokens) does not fit: {err}"
        ) from None


SCORING = {
    BackboneKind.MASKED: "argmax token at each of as many [MASK] as span1_text has tokens, one forward (PET: one "
                         "extra mask, filled most-confident-first)",
    BackboneKind.CAUSAL: "greedy generation of as many tokens as span1_text has, after the pattern",
}


# Fidelity item `wsc_masks` (masked LMs): `exact` renders as many [MASK] as span1_text has tokens; `pet` follows
# PET's WscPVP.get_parts (timoschick/pet pet/pvp.py; the authors' copy: THUDM/P-tuning
# PT-Fewshot/data_utils/task_pvps.py): one mask more at evaluation, and in training 0-3 more (`rng.randint(0, 3)`,
# drawn once per training example when it is encoded, from the PVP's `random.Random(seed)`, seed 42), whose
# targets are <pad> (pet/task_helpers.py WscTaskHelper.add_special_input_features). Causal LMs have no masks and
# keep the span's length either way (PET's WSC helper serves masked LMs only).
PET_EVAL_EXTRA_MASKS = 1
PET_TRAIN_EXTRA_MASKS = (0, 3)
PET_PVP_SEED = 42


class SpanScorer(Scorer):
    """WSC: train to produce the referent (span1_text) at the target; predict a span of the gold span's length
    (masked: argmax at each of its masks; causal: greedy generation). `predict` returns the predicted span
    texts (special tokens dropped), which the task judges against span1_text (PET's rule)."""

    def __init__(self, ctx: ScorerContext) -> None:
        require_target(ctx)
        self.ctx = ctx
        self.model: PromptedLM = ctx.model

    def span_ids(self, example: Example) -> list[int]:
        space = self.ctx.template.target_space_before
        return word_token_ids(self.ctx.tokenizer, example.candidates[0], space_before=space)

    def _render(self, example: Example, target_ids: Optional[Sequence[int]], n_tokens: int) -> Rendered:
        ctx = self.ctx
        return render_span_input(ctx.template, ctx.tokenizer, example, n_tokens, causal=ctx.causal,
                                 max_length=ctx.max_length, target_ids=target_ids)

    @property
    def pet_masks(self) -> bool:
        """Fidelity item `wsc_masks=pet` on a masked LM: PET's extra masks (see PET_EVAL_EXTRA_MASKS)."""
        return self.ctx.fidelity.wsc_masks == "pet" and not self.ctx.causal

    def train_items(self, examples: Sequence[Example]) -> list[Rendered]:
        items = []
        rng = random.Random(PET_PVP_SEED)
        pad = self.ctx.tokenizer.pad_token_id
        if self.pet_masks and pad is None:
            raise ConfigError("wsc_masks=pet trains the extra masks on <pad>, and this tokenizer has no pad token")
        for ex in training_examples(self.ctx, examples):
            ids = self.span_ids(ex)
            if self.pet_masks:
                ids = ids + [pad] * rng.randint(*PET_TRAIN_EXTRA_MASKS)
            items.append(self._render(ex, ids, len(ids)))
        return items

    def loss(self, items: list[Rendered]) -> torch.Tensor:
        """Cross-entropy of the referent's tokens (PET's masked-LM loss on the positive examples)."""
        return target_loss(self.model, items)

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[str]:
        self.model.eval()
        extra = PET_EVAL_EXTRA_MASKS if self.pet_masks else 0
        lengths = [len(self.span_ids(ex)) + extra for ex in examples]
        rendered = [self._render(ex, None, n) for ex, n in zip(examples, lengths)]
        batch_size = self.ctx.eval_batch_size
        with tqdm(total=len(length_batches(rendered, batch_size)), desc=desc, disable=self.ctx.quiet, leave=False,
                  unit="batch") as bar:
            tokens = predict_span_tokens(self.model, rendered, lengths, batch_size=batch_size, progress=bar)
        return [self.ctx.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    def describe(self) -> dict[str, Any]:
        out = {"scoring": SCORING[self.model.backbone.kind],
               "training": "positive examples only, target span1_text (PET)"}
        if self.pet_masks:
            out["masks"] = (f"PET's: span length + {PET_EVAL_EXTRA_MASKS} at evaluation, + randint"
                            f"{PET_TRAIN_EXTRA_MASKS} <pad> targets in training")
        return out


def span_scorer(ctx: ScorerContext) -> SpanScorer:
    scorer_options(ctx, ())
    return SpanScorer(ctx)


register_scorer("span", span_scorer)
