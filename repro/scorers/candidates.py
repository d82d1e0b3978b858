"""Candidate tasks (COPA, ReCoRD): each candidate (a choice, an entity) is a multi-token answer; the
best-scoring candidate is the prediction. The scorer the SuperGLUE engine uses for tasks of kind `candidates`.

This module decides what is scored (the rendering of candidates, how token log-probabilities reduce to a
score, the training loss); the log-probabilities themselves come from `repro.core.inference.token_log_probs`:
- masked LM: the pattern gets as many [MASK] tokens as the candidate has tokens and is read in one forward;
  the score is the sum of the log-probabilities of the candidate's tokens at their masks (joint scoring in a
  single pass). Candidates with the same number of tokens have the same input and share that forward.
  PET scored differently: it filled the masks one at a time, most confident first, re-running the model
  after each (a pseudo-autoregressive product), and trained COPA with `max(len c1, len c2)` masks (fidelity
  item `candidate_train_masks=max`, below).
- causal LM: the candidate's tokens follow the pattern (teacher forcing); the score is
  sum_j log P(token_j | pattern, token_<j). The pattern before the answer is the same for every candidate of
  an example: it runs once, and its key/value cache is reused by every candidate (same numbers as one full
  forward per candidate, tested; ReCoRD's passages make this about ten times cheaper).
- `normalize=mean` divides a candidate's score by its token count (length-normalised); `sum` (default) is PET's.

Training over candidates: cross-entropy over the candidates' scores of an example (`loss=ce`, default), or
PET's hinge `sum_wrong max(0, 1 - (s_gold - s_wrong))` (`loss=hinge`; PET computed it on mean token
log-likelihoods, i.e. with `normalize=mean`). Both are run options: `--scorer-option normalize=mean`,
`--scorer-option loss=hinge`; the results record them under `scoring`.

Training masks (fidelity item `candidate_train_masks`, masked LMs): `own` trains each candidate on the input it is
evaluated with (its own mask count); `max` is PET's training input (timoschick/pet pet/pvp.py CopaPVP and RecordPVP
`get_parts`: `num_masks = max(...)` over the example's candidates; pet/task_helpers.py CopaTaskHelper and
RecordTaskHelper `train_step`: every candidate read on that one input, the shorter at its first masks, the rest
ignored), as in the authors' PT-Fewshot (data_utils/task_pvps.py CopaPVP). Evaluation keeps each candidate's own
count under both, as PET's `trim_input_ids` does. Causal LMs have no masks: `own` either way.

Truncation: every candidate of an example sees the same input. The shortenable text (`{passage:shorten}`) is
cut so that the *longest* candidate fits in `max_length`, and each shorter candidate keeps exactly that text.
If even an empty shortenable text leaves no room for a candidate, a TemplateError names the example (uid),
the candidate and the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.backbone import BackboneKind
from repro.core.inference import token_log_probs
from repro.core.model import PromptedLM
from repro.core.template import Rendered, Template, TemplateError, word_token_ids
from repro.errors import ConfigError
from repro.scorers.base import Scorer, ScorerContext, register_scorer, require_target, scorer_options, training_examples
from repro.tasks.base import Example

NORMALIZE = ("sum", "mean")
LOSSES = ("ce", "hinge")
TRAIN_MASKS = ("own", "max")  # fidelity item candidate_train_masks (see the module doc)


@dataclass(frozen=True)
class CandidateOptions:
    """Scoring choices of the candidate tasks; recorded in the results (`describe`)."""

    normalize: str = field(default="sum", metadata={
        "help": "candidate score: sum (PET) | mean (per token) of the log-probabilities"})
    loss: str = field(default="ce", metadata={"help": "training loss over candidates: ce | hinge (PET's)"})

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"unknown normalize {self.normalize!r}; valid: {', '.join(NORMALIZE)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown candidate loss {self.loss!r}; valid: {', '.join(LOSSES)}")


# ------------------------------------------------------------------------------------------------ rendering
def render_candidates(template: Template, tokenizer, example: Example, *, causal: bool,
                      max_length: Optional[int], masks: str = "own") -> list[Rendered]:
    """One input per candidate of `example`, all with the same (possibly truncated) text; see the module doc.
    `masks="max"` (masked LMs): every candidate on the input with the longest candidate's mask count, read at
    its first masks (PET's training input)."""
    if masks not in TRAIN_MASKS:
        raise ConfigError(f"unknown candidate masks {masks!r}; valid: {', '.join(TRAIN_MASKS)}")
    ids = [word_token_ids(tokenizer, c, space_before=template.target_space_before) for c in example.candidates]
    longest = max(len(i) for i in ids)
    shared = masks == "max" and not causal
    out: list[Optional[Rendered]] = [None] * len(ids)
    for k in sorted(range(len(ids)), key=lambda k: -len(ids[k])):  # the longest first: it names the failure
        budget = None if max_length is None or shared else max_length - (longest - len(ids[k]))
        try:
            if shared:
                r = template.render(tokenizer, example.values, causal=False, target_len=longest, max_length=budget)
                r.target_positions, r.target_ids = r.target_positions[: len(ids[k])], list(ids[k])
                out[k] = r
            else:
                out[k] = template.render(tokenizer, example.values, causal=causal, target_ids=ids[k],
                                         max_length=budget)
        except TemplateError as err:
            raise TemplateError(
                f"{example.uid}: candidate {example.candidates[k]!r} ({len(ids[k])} tokens) does not fit: {err}"
            ) from None
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ scores, loss
def reduce_scores(token_lps: Sequence[torch.Tensor], normalize: str) -> torch.Tensor:
    """Candidate scores `(K,)` from per-token log-probs: their sum, or their mean (length-normalised)."""
    if normalize not in NORMALIZE:
        raise ConfigError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZE)}")
    reduce = torch.sum if normalize == "sum" else torch.mean
    return torch.stack([reduce(lp) for lp in token_lps])


def candidate_loss(scores: torch.Tensor, gold: int, kind: str) -> torch.Tensor:
    """The loss of one example from its candidates' scores `(K,)`: cross-entropy or PET's hinge."""
    if kind == "ce":
        return -torch.log_softmax(scores, dim=0)[gold]
    if kind == "hinge":
        wrong = torch.cat([scores[:gold], scores[gold + 1 :]])
        return torch.clamp(1.0 - (scores[gold] - wrong), min=0.0).sum()
    raise ConfigError(f"unknown candidate loss {kind!r}; valid: {', '.join(LOSSES)}")


# ------------------------------------------------------------------------------------------------ the scorer
@dataclass
class CandidateItem:
    """A training item: one rendered input per candidate and the index of the gold candidate."""

    rendered: tuple[Rendered, ...]
    label: int


SCORING = {
    BackboneKind.MASKED: "masked LM: one [MASK] per candidate token, one forward, sum of the candidate tokens' "
                         "log-probabilities at their masks (PET instead filled the masks one at a time, most "
                         "confident first)",
    BackboneKind.CAUSAL: "causal LM: summed log-probability of the candidate's tokens after the pattern (teacher "
                         "forcing; the pattern's key/value cache shared by all candidates)",
}


class CandidateScorer(Scorer):
    """COPA and ReCoRD: each candidate is a multi-token answer; the best-scoring candidate is the prediction.

    `predict` returns the index of the best candidate per example (ties: the first), which the task's `score`
    takes; `loss` is the mean over items of `candidate_loss`. Training items come from the task's
    `train_examples` (COPA adds PET's mirrored copies; ReCoRD makes one item per gold answer with up to 9
    sampled wrong entities).
    """

    def __init__(self, ctx: ScorerContext, options: CandidateOptions) -> None:
        require_target(ctx)
        self.ctx = ctx
        self.model: PromptedLM = ctx.model
        self.options = options

    def render(self, example: Example, *, masks: str = "own") -> tuple[Rendered, ...]:
        ctx = self.ctx
        return tuple(render_candidates(ctx.template, ctx.tokenizer, example, causal=ctx.causal,
                                       max_length=ctx.max_length, masks=masks))

    def train_items(self, examples: Sequence[Example]) -> list[CandidateItem]:
        """Training inputs in the layout fidelity item `candidate_train_masks` chooses (the module doc)."""
        masks = self.ctx.fidelity.candidate_train_masks
        return [CandidateItem(self.render(ex, masks=masks), int(ex.label))
                for ex in training_examples(self.ctx, examples)]

    def scores(self, rendered: Sequence[Sequence[Rendered]]) -> list[torch.Tensor]:
        """Per example (its candidates' inputs), the candidates' scores `(K,)`; differentiable with gradients on."""
        flat = [r for group in rendered for r in group]
        token_lps = token_log_probs(self.model, flat, batch_size=self.ctx.eval_batch_size)
        out, start = [], 0
        for group in rendered:
            out.append(reduce_scores(token_lps[start : start + len(group)], self.options.normalize))
            start += len(group)
        return out

    def loss(self, items: list[CandidateItem]) -> torch.Tensor:
        scores = self.scores([it.rendered for it in items])
        return torch.stack([candidate_loss(s, it.label, self.options.loss) for s, it in zip(scores, items)]).mean()

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[int]:
        """Examples go in chunks of `eval_batch_size` (their prefixes or inputs batched together; candidate rows
        at most `eval_batch_size` per forward), so that the progress bar moves."""
        self.model.eval()
        out: list[int] = []
        size = self.ctx.eval_batch_size
        with tqdm(total=len(examples), desc=desc, disable=self.ctx.quiet, leave=False, unit="ex") as bar:
            for start in range(0, len(examples), size):
                chunk = examples[start : start + size]
                out.extend(int(s.argmax()) for s in self.scores([self.render(ex) for ex in chunk]))
                bar.update(len(chunk))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "scoring": SCORING[self.model.backbone.kind],
            "normalize": self.options.normalize,
            "candidate_loss": self.options.loss,
            "truncation": "shortenable text cut to fit the longest candidate; every candidate sees the same text",
            "train_masks": self.ctx.fidelity.candidate_train_masks if not self.ctx.causal else "own",
        }


def candidate_scorer(ctx: ScorerContext) -> CandidateScorer:
    """`--scorer-option normalize=mean` (length-normalised scores), `--scorer-option loss=hinge` (PET's loss);
    the defaults are PET's summed log-probabilities and cross-entropy over the candidates."""
    return CandidateScorer(ctx, CandidateOptions(**scorer_options(ctx, ("normalize", "loss"))))


register_scorer("candidates", candidate_scorer)
