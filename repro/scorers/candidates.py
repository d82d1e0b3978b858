"""Multi-token answers on masked and causal LMs: candidate scoring (COPA, ReCoRD), span prediction (WSC), their
training losses, and the two scorers the SuperGLUE engine uses for tasks of kind `candidates` and `span`.

How a candidate (a choice, an entity) is scored:
- masked LM: the pattern gets as many [MASK] tokens as the candidate has tokens and is read in one forward;
  the score is the sum of the log-probabilities of the candidate's tokens at their masks (joint scoring in a
  single pass). Candidates with the same number of tokens have the same input and share that forward.
  PET scored differently: it filled the masks one at a time, most confident first, re-running the model
  after each (a pseudo-autoregressive product), and trained COPA with `max(len c1, len c2)` masks.
- causal LM: the candidate's tokens follow the pattern (teacher forcing); the score is
  sum_j log P(token_j | pattern, token_<j). The pattern before the answer is the same for every candidate of
  an example: it runs once, and its key/value cache is reused by every candidate (same numbers as one full
  forward per candidate, tested; ReCoRD's passages make this about ten times cheaper).
- `normalize=mean` divides a candidate's score by its token count (length-normalised); `sum` (default) is PET's.

Training over candidates: cross-entropy over the candidates' scores of an example (`loss=ce`, default), or
PET's hinge `sum_wrong max(0, 1 - (s_gold - s_wrong))` (`loss=hinge`; PET computed it on mean token
log-likelihoods, i.e. with `normalize=mean`). Both are run options: `--scorer-option normalize=mean`,
`--scorer-option loss=hinge`; the results record them under `scoring`.

Truncation: every candidate of an example sees the same input. The shortenable text (`{passage:shorten}`) is
cut so that the *longest* candidate fits in `max_length`, and each shorter candidate keeps exactly that text.
If even an empty shortenable text leaves no room for a candidate, a TemplateError names the example (uid),
the candidate and the sizes.

WSC span prediction: a masked LM fills as many masks as the gold span has tokens and takes the argmax token
at each (one pass; PET filled them most-confident-first and added one extra mask); a causal LM generates that
many tokens greedily after the pattern.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.batch import collate, pad_id_of
from repro.errors import ConfigError
from repro.methods import Style
from repro.core.model import PromptedLM, softcap
from repro.core.inference import length_batches
from repro.scorers.base import Scorer, ScorerContext, register_scorer
from repro.core.template import Rendered, Template, TemplateError, word_token_ids
from tasks.base import Example

NORMALIZE = ("sum", "mean")
LOSSES = ("ce", "hinge")


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
                      max_length: Optional[int]) -> list[Rendered]:
    """One input per candidate of `example`, all with the same (possibly truncated) text; see the module doc."""
    ids = [word_token_ids(tokenizer, c, space_before=template.target_space_before) for c in example.candidates]
    longest = max(len(i) for i in ids)
    out: list[Optional[Rendered]] = [None] * len(ids)
    for k in sorted(range(len(ids)), key=lambda k: -len(ids[k])):  # the longest first: it names the failure
        budget = None if max_length is None else max_length - (longest - len(ids[k]))
        try:
            out[k] = template.render(tokenizer, example.values, causal=causal, target_ids=ids[k], max_length=budget)
        except TemplateError as err:
            raise TemplateError(
                f"{example.uid}: candidate {example.candidates[k]!r} ({len(ids[k])} tokens) does not fit: {err}"
            ) from None
    return out  # type: ignore[return-value]


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


# ------------------------------------------------------------------------------------------------ scoring
def token_log_probs(model: PromptedLM, rendered: Sequence[Rendered], *, batch_size: int = 16) -> list[torch.Tensor]:
    """Per input, the log-probability of each of its `target_ids` at its target positions, shape `(n_tokens,)`.

    Differentiable when called with gradients enabled (training). Masked LMs: identical inputs (candidates
    with as many tokens) share one forward. Causal LMs: candidates sharing the text before the answer share
    one forward of it (its key/value cache); see `_causal_log_probs`.
    """
    if not rendered:
        return []
    if model.backbone.is_causal:
        return _causal_log_probs(model, rendered, batch_size)
    return _masked_log_probs(model, rendered, batch_size)


def _masked_log_probs(model: PromptedLM, rendered: Sequence[Rendered], batch_size: int) -> list[torch.Tensor]:
    pad = pad_id_of(model.backbone.tokenizer)
    unique: dict[tuple, int] = {}
    inputs: list[Rendered] = []
    users: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(rendered):
        key = (tuple(r.input_ids), tuple(r.prompt_positions), tuple(r.target_positions))
        if key not in unique:
            unique[key] = len(inputs)
            inputs.append(r)
        users[unique[key]].append(i)
    out: list[Optional[torch.Tensor]] = [None] * len(rendered)
    for idx in length_batches(inputs, batch_size):
        batch = collate([_without_targets(inputs[u]) for u in idx], pad)
        log_probs = model.target_log_probs(batch.to(model.lm.device))
        for row, u in enumerate(idx):
            for i in users[u]:
                ids = torch.tensor(rendered[i].target_ids, device=log_probs.device)
                out[i] = log_probs[row, : len(ids)].gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return out  # type: ignore[return-value]


def _without_targets(r: Rendered) -> Rendered:
    return Rendered(r.input_ids, r.token_type_ids, r.prompt_positions, r.target_positions, None, r.truncated)


@dataclass
class _Continuation:
    prefix: int  # index of the shared prefix
    tokens: list[int]  # teacher-forced answer tokens fed after the prefix (all but the last)
    targets: list[int]  # the answer tokens whose log-probabilities are read


def _causal_log_probs(model: PromptedLM, rendered: Sequence[Rendered], batch_size: int) -> list[torch.Tensor]:
    """Prefix sharing: run each distinct prefix (the input up to the position that predicts the first answer
    token) once with a key/value cache, then feed every candidate's remaining answer tokens on top of a copy
    of its prefix's cache. Prefixes are right-padded; the answer tokens get explicit position ids."""
    prefixes, continuations = _split_prefixes(rendered)
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(continuations):
        members[c.prefix].append(i)
    out: list[Optional[torch.Tensor]] = [None] * len(rendered)
    for idx in length_batches(prefixes, batch_size):
        state = _run_prefixes(model, [prefixes[p] for p in idx])
        local = {p: row for row, p in enumerate(idx)}
        todo = [i for p in idx for i in members[p]]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            rows = torch.tensor([local[continuations[i].prefix] for i in chunk], device=state.last_hidden.device)
            fed = [continuations[i].tokens for i in chunk]
            hidden = state.continue_with(model, rows, fed)
            n_max = max(len(continuations[i].targets) for i in chunk)
            target_hidden = state.last_hidden[rows].unsqueeze(1)
            if n_max > 1:
                target_hidden = torch.cat([target_hidden, hidden[:, : n_max - 1]], dim=1)
            log_probs = _head_log_probs(model, target_hidden)
            for row, i in enumerate(chunk):
                ids = torch.tensor(continuations[i].targets, device=log_probs.device)
                out[i] = log_probs[row, : len(ids)].gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return out  # type: ignore[return-value]


def _split_prefixes(rendered: Sequence[Rendered]) -> tuple[list[Rendered], list[_Continuation]]:
    index: dict[tuple, int] = {}
    prefixes: list[Rendered] = []
    continuations: list[_Continuation] = []
    for r in rendered:
        cut = r.target_positions[0] + 1
        if r.target_ids is None or r.input_ids[cut:] != list(r.target_ids[:-1]):
            raise ConfigError("causal candidate scoring needs inputs rendered with their target ids (teacher forcing)")
        key = (tuple(r.input_ids[:cut]), tuple(r.prompt_positions))
        if key not in index:
            index[key] = len(prefixes)
            prefixes.append(Rendered(r.input_ids[:cut], r.token_type_ids[:cut], list(r.prompt_positions), [cut - 1],
                                     None))
        continuations.append(_Continuation(index[key], list(r.input_ids[cut:]), list(r.target_ids)))
    return prefixes, continuations


@dataclass
class _PrefixState:
    """Hidden state at the last prefix position, the key/value cache, the padding mask and true lengths."""

    last_hidden: torch.Tensor  # (Q, H)
    cache: Any
    mask: torch.Tensor  # (Q, P)
    lengths: torch.Tensor  # (Q,)

    def continue_with(self, model: PromptedLM, rows: torch.Tensor, fed: list[list[int]]) -> Optional[torch.Tensor]:
        """Hidden states `(k, L, H)` of the tokens `fed[j]` placed after prefix `rows[j]` (None when all are empty)."""
        width = max(len(f) for f in fed)
        if width == 0:
            return None
        device = self.last_hidden.device
        pad = pad_id_of(model.backbone.tokenizer)
        ids = torch.full((len(fed), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros((len(fed), width), dtype=self.mask.dtype, device=device)
        for j, f in enumerate(fed):
            ids[j, : len(f)] = torch.tensor(f, dtype=torch.long)
            mask[j, : len(f)] = 1
        positions = self.lengths[rows].unsqueeze(1) + torch.arange(width, device=device)
        cache = _select_cache_rows(self.cache, rows, model.backbone.config)
        with model.precision():
            embeds = model.backbone.input_embeddings()(ids)
            output = _body_forward(model, embeds, torch.cat([self.mask[rows], mask], dim=1), positions, cache)
        return output.last_hidden_state

    def extend(self, model: PromptedLM, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """Greedy decoding: feed one token per row (in place, on this cache); the new last hidden `(Q, H)`."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = (self.lengths + step).unsqueeze(1)
        with model.precision():
            embeds = model.backbone.input_embeddings()(tokens.unsqueeze(1))
            output = _body_forward(model, embeds, self.mask, positions, self.cache)
        self.last_hidden = output.last_hidden_state[:, -1]
        return self.last_hidden


def _run_prefixes(model: PromptedLM, prefixes: Sequence[Rendered]) -> _PrefixState:
    batch = collate(prefixes, pad_id_of(model.backbone.tokenizer)).to(model.lm.device)
    with model.precision():
        embeds = model.inputs_embeds(batch)
        output = _body_forward(model, embeds, batch.attention_mask, None, None)
    lengths = batch.attention_mask.sum(dim=1)
    rows = torch.arange(len(prefixes), device=lengths.device)
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    if cache is None:
        raise ConfigError(f"{type(model.backbone.body()).__name__} returned no key/value cache; "
                          "causal candidate scoring needs one")
    return _PrefixState(output.last_hidden_state[rows, lengths - 1], cache, batch.attention_mask, lengths)


def _body_forward(model: PromptedLM, embeds: torch.Tensor, mask: torch.Tensor, positions: Optional[torch.Tensor],
                  cache: Any):
    body = model.backbone.body()
    kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": mask, "use_cache": True}
    if positions is not None:
        kwargs["position_ids"] = positions
    if cache is not None:
        kwargs[_cache_argument(body)] = cache
    return body(**kwargs)


def _cache_argument(body: torch.nn.Module) -> str:
    """transformers 5 calls the key/value cache `cache`; 4.x calls it `past_key_values`."""
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def _select_cache_rows(cache, rows: torch.Tensor, config):
    """A new cache holding batch rows `rows` (repeats allowed) of `cache`; the original stays untouched."""
    from transformers import DynamicCache

    data = [(layer.keys[rows], layer.values[rows]) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=data, config=config)


def _head_log_probs(model: PromptedLM, hidden: torch.Tensor) -> torch.Tensor:
    with model.precision():
        logits = model.backbone.head()(hidden)
    return torch.log_softmax(softcap(logits.float(), model.backbone.config), dim=-1)


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


@torch.no_grad()
def predict_span_tokens(model: PromptedLM, rendered: Sequence[Rendered], lengths: Sequence[int], *,
                        batch_size: int = 16, progress: Optional[tqdm] = None) -> list[list[int]]:
    """Per input, the predicted span of `lengths[i]` tokens: argmax at each mask (masked LM, one pass) or greedy
    generation after the pattern (causal LM, `render_span_input` without target ids)."""
    out: list[list[int]] = [[] for _ in rendered]
    pad = pad_id_of(model.backbone.tokenizer)
    for idx in length_batches(rendered, batch_size):
        if model.backbone.is_causal:
            state = _run_prefixes(model, [rendered[i] for i in idx])
            steps = max(lengths[i] for i in idx)
            hidden, tokens = state.last_hidden, []
            for step in range(steps):
                tokens.append(_head_log_probs(model, hidden).argmax(dim=-1))
                if step + 1 < steps:
                    hidden = state.extend(model, tokens[-1], step)
            generated = torch.stack(tokens, dim=1)
            for row, i in enumerate(idx):
                out[i] = generated[row, : lengths[i]].tolist()
        else:
            batch = collate([_without_targets(rendered[i]) for i in idx], pad).to(model.lm.device)
            best = model.target_logits(batch).argmax(dim=-1)
            for row, i in enumerate(idx):
                out[i] = best[row, : lengths[i]].tolist()
        if progress is not None:
            progress.update(1)
    return out


# ------------------------------------------------------------------------------------------------ scorers
@dataclass
class CandidateItem:
    """A training item: one rendered input per candidate and the index of the gold candidate."""

    rendered: tuple[Rendered, ...]
    label: int


class CandidateScorer(Scorer):
    """COPA and ReCoRD: each candidate is a multi-token answer; the best-scoring candidate is the prediction.

    `predict` returns the index of the best candidate per example (ties: the first), which the task's `score`
    takes; `loss` is the mean over items of `candidate_loss`. Training items come from the task's
    `train_examples` (COPA adds PET's mirrored copies; ReCoRD makes one item per gold answer with up to 9
    sampled wrong entities).
    """

    def __init__(self, ctx: ScorerContext, options: CandidateOptions) -> None:
        _require_target(ctx)
        self.ctx = ctx
        self.model: PromptedLM = ctx.model
        self.options = options

    def render(self, example: Example) -> tuple[Rendered, ...]:
        ctx = self.ctx
        return tuple(render_candidates(ctx.template, ctx.tokenizer, example, causal=ctx.causal,
                                       max_length=ctx.max_length))

    def train_items(self, examples: Sequence[Example]) -> list[CandidateItem]:
        return [CandidateItem(self.render(ex), int(ex.label)) for ex in _training_examples(self.ctx, examples)]

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
        masked = ("masked LM: one [MASK] per candidate token, one forward, sum of the candidate tokens' "
                  "log-probabilities at their masks (PET instead filled the masks one at a time, most confident first)")
        causal = ("causal LM: summed log-probability of the candidate's tokens after the pattern (teacher forcing; "
                  "the pattern's key/value cache shared by all candidates)")
        return {
            "scoring": causal if self.ctx.causal else masked,
            "normalize": self.options.normalize,
            "candidate_loss": self.options.loss,
            "truncation": "shortenable text cut to fit the longest candidate; every candidate sees the same text",
        }


class SpanScorer(Scorer):
    """WSC: train to produce the referent (span1_text) at the target; predict a span of the gold span's length
    (masked: argmax at each of its masks; causal: greedy generation). `predict` returns the predicted span
    texts (special tokens dropped), which the task judges against span1_text (PET's rule)."""

    def __init__(self, ctx: ScorerContext) -> None:
        _require_target(ctx)
        self.ctx = ctx
        self.model: PromptedLM = ctx.model

    def span_ids(self, example: Example) -> list[int]:
        space = self.ctx.template.target_space_before
        return word_token_ids(self.ctx.tokenizer, example.candidates[0], space_before=space)

    def _render(self, example: Example, target_ids: Optional[Sequence[int]], n_tokens: int) -> Rendered:
        ctx = self.ctx
        return render_span_input(ctx.template, ctx.tokenizer, example, n_tokens, causal=ctx.causal,
                                 max_length=ctx.max_length, target_ids=target_ids)

    def train_items(self, examples: Sequence[Example]) -> list[Rendered]:
        items = []
        for ex in _training_examples(self.ctx, examples):
            ids = self.span_ids(ex)
            items.append(self._render(ex, ids, len(ids)))
        return items

    def loss(self, items: list[Rendered]) -> torch.Tensor:
        """Cross-entropy of the referent's tokens (PET's masked-LM loss on the positive examples)."""
        return self.model.loss(collate(items, pad_id_of(self.ctx.tokenizer)).to(self.model.lm.device))

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[str]:
        self.model.eval()
        lengths = [len(self.span_ids(ex)) for ex in examples]
        rendered = [self._render(ex, None, n) for ex, n in zip(examples, lengths)]
        batch_size = self.ctx.eval_batch_size
        with tqdm(total=len(length_batches(rendered, batch_size)), desc=desc, disable=self.ctx.quiet, leave=False,
                  unit="batch") as bar:
            tokens = predict_span_tokens(self.model, rendered, lengths, batch_size=batch_size, progress=bar)
        return [self.ctx.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    def describe(self) -> dict[str, Any]:
        how = ("greedy generation of as many tokens as span1_text has, after the pattern" if self.ctx.causal else
               "argmax token at each of as many [MASK] as span1_text has tokens, one forward (PET: one extra mask, "
               "filled most-confident-first)")
        return {"scoring": how, "training": "positive examples only, target span1_text (PET)"}


def _require_target(ctx: ScorerContext) -> None:
    if ctx.method.style is Style.CLASSIFIER or not ctx.template.has_target:
        raise ConfigError(f"task {ctx.task.name!r} ({ctx.task.kind}) is scored through a [MASK] target; "
                          f"method {ctx.method.name!r} with pattern {ctx.pattern!r} has none (CLS-FT is not offered "
                          "for COPA, WSC and ReCoRD)")


def _training_examples(ctx: ScorerContext, examples: Sequence[Example]) -> list[Example]:
    """The task's own selection and augmentation of its training examples (`train_examples`, see tasks/)."""
    chosen = ctx.task.train_examples(examples)
    if not chosen:
        raise ConfigError(f"task {ctx.task.name!r}: none of the {len(examples)} training examples can train "
                          "(unlabeled, or no gold answer among the candidates)")
    return chosen


def scorer_options(ctx: ScorerContext, accepted: tuple[str, ...]) -> dict[str, str]:
    """The run's scorer options (`--scorer-option KEY=VALUE`), checked against what this scorer takes."""
    unknown = sorted(set(ctx.options) - set(accepted))
    if unknown:
        raise ConfigError(f"task {ctx.task.name!r} ({ctx.task.kind}): unknown scorer option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(accepted) if accepted else 'none'}")
    return dict(ctx.options)


def candidate_scorer(ctx: ScorerContext) -> CandidateScorer:
    """`--scorer-option normalize=mean` (length-normalised scores), `--scorer-option loss=hinge` (PET's loss);
    the defaults are PET's summed log-probabilities and cross-entropy over the candidates."""
    return CandidateScorer(ctx, CandidateOptions(**scorer_options(ctx, ("normalize", "loss"))))


def span_scorer(ctx: ScorerContext) -> SpanScorer:
    scorer_options(ctx, ())
    return SpanScorer(ctx)


register_scorer("candidates", candidate_scorer)
register_scorer("span", span_scorer)
