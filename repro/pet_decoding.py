"""PET's decoding of several masks on a masked LM: fidelity item `decoding=pet` (REPRODUCING.md, "Differences").

The suite reads an answer of several [MASK] tokens in one forward (`repro.core.inference`): a candidate's score is
the sum of its tokens' log-probabilities at their masks, a WSC span the argmax at each mask. PET fills the masks
one at a time, most confident first, and runs the model again after each fill:
- candidates (COPA, ReCoRD): timoschick/pet `pet/task_helpers.py` CopaTaskHelper._get_choice_log_probability and
  RecordTaskHelper._get_choice_probabilities_batched (the authors' copy: THUDM/P-tuning
  `PT-Fewshot/pet/task_helpers.py` CopaTaskHelper): among the masks left, the one where the candidate's own token
  is most probable takes that token; the score is the sum of the log-probabilities collected so;
- span (WSC): WscTaskHelper.eval_step (both repositories): among the masks left, the one whose argmax token is most
  probable takes it; the prediction is the text of the tokens at the original masks, special tokens dropped.
Ties go to the first mask (PET's strict `>`). Training is the same under both (PET's train steps read every mask in
one forward). Causal LMs score by teacher forcing, which is exact: `adopt` leaves their scorers as they are.

This module is outside the scorer-code hash (`repro.experiment.fingerprints.SCORER_CODE`) on purpose: results that
never ran it keep their fingerprints, and a run that chooses it records its code's hash (`repro.fidelity.CHOICE_CODE`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.inference import collate_for, length_batches, token_log_probs
from repro.core.model import PromptedLM
from repro.core.template import Rendered
from repro.scorers.base import Scorer
from repro.scorers.candidates import CandidateScorer, reduce_scores
from repro.scorers.span import PET_EVAL_EXTRA_MASKS, SpanScorer
from repro.tasks.base import Example

DESCRIPTION = "PET's: one mask at a time, most confident first, the model rerun after each fill"


def _open_copy(r: Rendered) -> Rendered:
    """A copy whose ids and targets the decoding may change (renderings are shared through the render memo)."""
    return replace(r, input_ids=list(r.input_ids), target_positions=list(r.target_positions),
                   target_ids=None if r.target_ids is None else list(r.target_ids))


def _fill(r: Rendered, k: int, token: int) -> None:
    """Put `token` at target k's mask and take that target off the list."""
    r.input_ids[r.target_positions[k]] = token
    del r.target_positions[k]
    if r.target_ids is not None:
        del r.target_ids[k]


def candidate_log_probs(model: PromptedLM, rendered: Sequence[Rendered], *, batch_size: int) -> list[torch.Tensor]:
    """Per input (a candidate at its masks), the log-probabilities PET collects, in the order it fills the masks."""
    current = [_open_copy(r) for r in rendered]
    collected: list[list[torch.Tensor]] = [[] for _ in rendered]
    while True:
        left = [i for i, r in enumerate(current) if r.target_positions]
        if not left:
            return [torch.stack(c) for c in collected]
        for i, lps in zip(left, token_log_probs(model, [current[i] for i in left], batch_size=batch_size)):
            k = int(lps.argmax())  # the first of equal maxima, as PET's `>`
            collected[i].append(lps[k])
            _fill(current[i], k, current[i].target_ids[k])


def span_tokens(model: PromptedLM, rendered: Sequence[Rendered], *, batch_size: int) -> list[list[int]]:
    """Per input (a span of masks, no target ids), the tokens PET puts at its masks, in position order."""
    current = [_open_copy(r) for r in rendered]
    filled: list[dict[int, int]] = [{} for _ in rendered]
    while True:
        left = [i for i, r in enumerate(current) if r.target_positions]
        if not left:
            return [[f[p] for p in r.target_positions] for f, r in zip(filled, rendered)]
        for idx in length_batches([current[i] for i in left], batch_size):
            rows = [left[j] for j in idx]
            log_probs = model.target_log_probs(collate_for(model, [current[i] for i in rows]).to(model.lm.device))
            for row, i in enumerate(rows):
                best, tokens = log_probs[row, : len(current[i].target_positions)].max(dim=-1)
                k = int(best.argmax())
                filled[i][current[i].target_positions[k]] = int(tokens[k])
                _fill(current[i], k, int(tokens[k]))


class PetCandidateScorer(CandidateScorer):
    """COPA and ReCoRD on a masked LM, candidates decoded as PET does (see the module doc); training unchanged."""

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[int]:
        self.model.eval()
        out: list[int] = []
        size = self.ctx.eval_batch_size
        for start in tqdm(range(0, len(examples), size), desc=desc, disable=self.ctx.quiet, leave=False):
            groups = [self.render(ex) for ex in examples[start : start + size]]
            flat = [r for group in groups for r in group]
            lps = candidate_log_probs(self.model, flat, batch_size=size)
            at = 0
            for group in groups:
                out.append(int(reduce_scores(lps[at : at + len(group)], self.options.normalize).argmax()))
                at += len(group)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "decoding": DESCRIPTION}


class PetSpanScorer(SpanScorer):
    """WSC on a masked LM, the span decoded as PET does (see the module doc); training unchanged."""

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[str]:
        self.model.eval()
        extra = PET_EVAL_EXTRA_MASKS if self.pet_masks else 0
        rendered = [self._render(ex, None, len(self.span_ids(ex)) + extra) for ex in examples]
        tokens = span_tokens(self.model, rendered, batch_size=self.ctx.eval_batch_size)
        return [self.ctx.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "decoding": DESCRIPTION}


def adopt(scorer: Scorer) -> Scorer:
    """`scorer` decoding as PET does where it fills several masks (masked LMs: COPA, ReCoRD, WSC); any other
    scorer as it is."""
    if isinstance(scorer, CandidateScorer) and not scorer.ctx.causal:
        return PetCandidateScorer(scorer.ctx, scorer.options)
    if isinstance(scorer, SpanScorer) and not scorer.ctx.causal:
        return PetSpanScorer(scorer.ctx)
    return scorer
