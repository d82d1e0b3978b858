"""Inference: the one place where scoring reads a model, so that every scorer gets its numbers the same way.

- batching: examples grouped by length (less padding), results returned in input order;
- `gather_target_log_probs`: each row's target ids picked out of log-probabilities, 0 where padded; every
  answer token's log-probability a scorer uses (verbalizer words, candidates, in training and evaluation) is
  read here (the full-vocabulary cross-entropy `PromptedLM.loss` reduces inside `nll_loss` instead);
- argmax within a candidate vocabulary (`argmax_candidates`, the prompted LM's sliced-head fast path); a
  classifier head's logits for every input (`classifier_scores`, whose argmax CLS-FT predicts);
- multi-token answers: plain full forwards (`answer_log_probs`, `summed_answer_log_probs`) and shared forwards
  (`token_log_probs`): a masked LM runs identical inputs once; a causal LM runs the text before the answer once
  and continues every candidate from a copy of its key/value cache;
- greedy span decoding (`predict_span_tokens`) on that same cache, and the transformers-version cache shim.

The LM head (-> float32 -> soft-cap -> log-softmax) is `PromptedLM.head_logits` / `head_log_probs`
(repro.core.model), used both for full forwards and for cache continuations here.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.backbone import BackboneKind
from repro.core.batch import Batch, collate, pad_id_of
from repro.core.model import ClassifierLM, PromptedLM
from repro.core.template import Rendered
from repro.errors import ConfigError


# ------------------------------------------------------------------------------------------------ batching
def rendered_length(rendered: Rendered) -> int:
    """Tokens of a rendered input (the default length of `length_batches`)."""
    return len(rendered.input_ids)


def length_batches(items: Sequence[Any], batch_size: Optional[int],
                   max_tokens: Optional[int] = None, *,
                   length: Callable[[Any], int] = rendered_length) -> list[list[int]]:
    """Indices grouped into batches of similar `length` (stable: ties keep input order).

    At most `batch_size` rows per batch (None: no row limit). With a `max_tokens` budget (rows x padded
    length), a batch also stops where the budget is reached and, once it holds half the budget, where the
    length changes: lengths common enough to fill half a budget get batches of exactly one length (no padding,
    hence no attention mask; see `PromptedLM.target_hidden`), rare lengths share padded batches with their
    neighbours. Evaluation batches (rendered inputs) and the passes of a joint training step (training items,
    `repro.experiment.joint`, whose `length` reads an item's longest input) are cut here alike.
    """
    lengths = [length(item) for item in items]
    order = sorted(range(len(items)), key=lengths.__getitem__)
    if batch_size is None and max_tokens is None:
        raise ConfigError("length_batches needs a batch_size or a max_tokens budget")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]  # type: ignore[operator]
    if max_tokens < 1 or (batch_size is not None and batch_size < 1):
        raise ConfigError(f"batch_size and max_tokens must be positive, got {batch_size} and {max_tokens}")
    rows = len(items) if batch_size is None else batch_size
    batches: list[list[int]] = []
    current: list[int] = []
    current_length = 0
    for i in order:
        n = lengths[i]
        full = len(current) >= rows or (len(current) + 1) * n > max_tokens
        if current and (full or (n != current_length and len(current) * current_length >= max_tokens // 2)):
            batches.append(current)
            current = []
        current.append(i)
        current_length = n
    if current:
        batches.append(current)
    return batches


def collate_for(model: PromptedLM | ClassifierLM, rendered: Sequence[Rendered]) -> Batch:
    """One padded batch of `rendered`, padded with the model's tokenizer's pad id."""
    return collate(rendered, pad_id_of(model.backbone.tokenizer))


def _progress_batches(model: PromptedLM | ClassifierLM, rendered: Sequence[Rendered], batch_size: int, desc: str,
                      quiet: bool, max_tokens: Optional[int] = None) -> Iterator[tuple[list[int], Batch]]:
    """(indices, batch) over length batches of `rendered`, with a progress bar of batches."""
    batches = length_batches(rendered, batch_size, max_tokens)
    for idx in tqdm(batches, desc=desc, disable=quiet, leave=False, unit="batch"):
        yield idx, collate_for(model, [rendered[i] for i in idx])


# ------------------------------------------------------------------------------------------------ the gather
def gather_target_log_probs(log_probs: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """`log_probs` `(..., T, V)` at `target_ids` `(..., T)` -> `(..., T)`; a negative id (collate's -100) marks
    padding and reads 0. The single place where answer tokens' log-probabilities are picked out."""
    target_ids = target_ids.to(log_probs.device)
    picked = log_probs.gather(-1, target_ids.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(target_ids >= 0, picked, torch.zeros_like(picked))


def _row_log_probs(log_probs: torch.Tensor, row: int, target_ids: Sequence[int]) -> torch.Tensor:
    """Row `row`'s log-probabilities of `target_ids` at its first `len(target_ids)` target positions."""
    ids = torch.tensor(list(target_ids), device=log_probs.device)
    return gather_target_log_probs(log_probs[row, : len(ids)], ids)


# ------------------------------------------------------------------------------------------------ argmax
@torch.inference_mode()
def _argmax_rows(model: PromptedLM | ClassifierLM, rendered: Sequence[Rendered],
                 scores: Callable[[Batch], torch.Tensor], batch_size: int, desc: str, quiet: bool,
                 max_tokens: Optional[int] = None) -> torch.Tensor:
    """Per example, the argmax of `scores(batch)` `(B, K)`, in input order."""
    model.eval()
    best = torch.empty(len(rendered), dtype=torch.long)
    for idx, batch in _progress_batches(model, rendered, batch_size, desc, quiet, max_tokens):
        best[idx] = scores(batch).argmax(dim=-1).cpu()
    return best


#: Default token budget of an evaluation batch (rows x padded length). Measured on smollm2-135m in bf16
#: (benchmarks/lama_speed.py, Intel Xeon with AMX, 2 threads): the forward's rate rises up to ~4-5k tokens per
#: batch and falls beyond (the activations outgrow the core caches).
EVAL_TOKENS = 4096


def argmax_candidates(model: PromptedLM, rendered: Sequence[Rendered], candidate_ids: torch.Tensor, *,
                      batch_size: int = 64, desc: str = "eval", quiet: bool = False,
                      max_tokens: Optional[int] = EVAL_TOKENS) -> torch.Tensor:
    """For each example, the index (into `candidate_ids`) of the best candidate at its first target position.
    Batches hold at most `batch_size` rows and `max_tokens` tokens (None: rows only); see `length_batches`."""
    return _argmax_rows(model, rendered, lambda batch: model.candidate_logits(batch, candidate_ids)[:, 0, :],
                        batch_size, desc, quiet, max_tokens)


@torch.inference_mode()
def classifier_scores(model: ClassifierLM, rendered: Sequence[Rendered], *, batch_size: int = 64, desc: str = "eval",
                      quiet: bool = False, max_tokens: Optional[int] = EVAL_TOKENS) -> torch.Tensor:
    """`(N, labels)` float32 logits of the CLS-FT head for every input, in input order (evaluation: a labels
    head predicts each row's argmax; a multiple-choice head compares its inputs' scores across rows)."""
    model.eval()
    out: Optional[torch.Tensor] = None
    for idx, batch in _progress_batches(model, rendered, batch_size, desc, quiet, max_tokens):
        logits = model.logits(batch).float().cpu()
        if out is None:
            out = torch.empty(len(rendered), logits.shape[-1])
        out[idx] = logits
    return out if out is not None else torch.empty(0, 0)


def classifier_logits(model: ClassifierLM, rendered: Sequence[Rendered]) -> torch.Tensor:
    """`(B, labels)` logits of the CLS-FT head, with gradients (training)."""
    return model.logits(collate_for(model, rendered))


def candidate_logits_at_target(model: PromptedLM, rendered: Sequence[Rendered],
                               candidate_ids: torch.Tensor) -> torch.Tensor:
    """`(B, C)` full-head logits of `candidate_ids` at each row's first target position, with gradients."""
    logits = model.target_logits(collate_for(model, rendered))
    return logits[:, 0, candidate_ids.to(logits.device)]


# ------------------------------------------------------------------------------------------------ answers
@torch.no_grad()
def answer_log_probs(model: PromptedLM, rendered: Sequence[Rendered], *, batch_size: int = 32, desc: str = "score",
                     quiet: bool = False) -> list[list[float]]:
    """Per example, the log-probability of each of its target tokens (`rendered.target_ids`), in order; one full
    forward per example (the reference the shared forwards of `token_log_probs` are tested against)."""
    model.eval()
    out: list[list[float]] = [[] for _ in rendered]
    for idx, batch in _progress_batches(model, rendered, batch_size, desc, quiet):
        picked = gather_target_log_probs(model.target_log_probs(batch), batch.target_ids).cpu()
        for row, i in enumerate(idx):
            out[i] = picked[row, : len(rendered[i].target_positions)].tolist()
    return out


def summed_answer_log_probs(model: PromptedLM, rendered: Sequence[Rendered]) -> torch.Tensor:
    """`(B,)` summed log-probabilities of each row's target ids, one batch, with gradients (training)."""
    batch = collate_for(model, rendered)
    return gather_target_log_probs(model.target_log_probs(batch), batch.target_ids).sum(dim=1)


def target_loss(model: PromptedLM, rendered: Sequence[Rendered]) -> torch.Tensor:
    """Cross-entropy of the gold target ids over the full vocabulary (`PromptedLM.loss`), one batch."""
    return model.loss(collate_for(model, rendered).to(model.lm.device))


def target_row_losses(model: PromptedLM, rendered: Sequence[Rendered]) -> torch.Tensor:
    """`(B,)` per-example cross-entropy of the gold target ids over the full vocabulary, averaged over each
    row's target tokens, one batch, with gradients: the rows of `target_loss`, for joint training
    (`repro.core.joint`), where each unit's loss is the mean over its own rows."""
    batch = collate_for(model, rendered).to(model.lm.device)
    nll = -gather_target_log_probs(model.target_log_probs(batch), batch.target_ids)
    counts = (batch.target_ids >= 0).sum(dim=1).clamp(min=1)
    return nll.sum(dim=1) / counts


def token_log_probs(model: PromptedLM, rendered: Sequence[Rendered], *, batch_size: int = 16) -> list[torch.Tensor]:
    """Per input, the log-probability of each of its `target_ids` at its target positions, shape `(n_tokens,)`.

    Differentiable when called with gradients enabled (training). Masked LMs: identical inputs (candidates
    with as many tokens) share one forward. Causal LMs: candidates sharing the text before the answer share
    one forward of it (its key/value cache); see `_causal_log_probs`.
    """
    if not rendered:
        return []
    shared = {BackboneKind.MASKED: _masked_log_probs, BackboneKind.CAUSAL: _causal_log_probs}
    return shared[model.backbone.kind](model, rendered, batch_size)


# ------------------------------------------------------------------------------------------------ masked LMs
def _without_targets(r: Rendered) -> Rendered:
    return replace(r, target_ids=None)


def _untargeted_batch(model: PromptedLM, rendered: Sequence[Rendered]) -> Batch:
    """Inputs without their target ids (the ids are read per use, not per input), on the model's device."""
    return collate_for(model, [_without_targets(r) for r in rendered]).to(model.lm.device)


def _masked_log_probs(model: PromptedLM, rendered: Sequence[Rendered], batch_size: int) -> list[torch.Tensor]:
    """Joint scoring in one pass per distinct input: candidates with as many tokens render alike and share it."""
    unique: dict[tuple, int] = {}
    inputs: list[Rendered] = []
    users: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(rendered):
        key = (tuple(r.input_ids), tuple(r.prompt_positions), r.prompt_offset, tuple(r.target_positions))
        if key not in unique:
            unique[key] = len(inputs)
            inputs.append(r)
        users[unique[key]].append(i)
    out: list[Optional[torch.Tensor]] = [None] * len(rendered)
    for idx in length_batches(inputs, batch_size):
        log_probs = model.target_log_probs(_untargeted_batch(model, [inputs[u] for u in idx]))
        for row, u in enumerate(idx):
            for i in users[u]:
                out[i] = _row_log_probs(log_probs, row, rendered[i].target_ids)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ causal LMs
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
            log_probs = _continuation_log_probs(model, state, local, [continuations[i] for i in chunk])
            for row, i in enumerate(chunk):
                out[i] = _row_log_probs(log_probs, row, continuations[i].targets)
    return out  # type: ignore[return-value]


def _continuation_log_probs(model: PromptedLM, state: "_PrefixState", local: dict[int, int],
                            chunk: Sequence[_Continuation]) -> torch.Tensor:
    """`(k, n_max, V)` log-probabilities at the positions predicting each continuation's answer tokens: the
    prefix's last position (`local`: prefix index -> row of `state`), then the fed answer tokens (teacher
    forcing) on a copy of the prefix's cache."""
    rows = torch.tensor([local[c.prefix] for c in chunk], device=state.last_hidden.device)
    hidden = state.continue_with(model, rows, [c.tokens for c in chunk])
    n_max = max(len(c.targets) for c in chunk)
    target_hidden = state.last_hidden[rows].unsqueeze(1)
    if n_max > 1:
        target_hidden = torch.cat([target_hidden, hidden[:, : n_max - 1]], dim=1)
    return model.head_log_probs(target_hidden)


def _split_prefixes(rendered: Sequence[Rendered]) -> tuple[list[Rendered], list[_Continuation]]:
    index: dict[tuple, int] = {}
    prefixes: list[Rendered] = []
    continuations: list[_Continuation] = []
    for r in rendered:
        cut = r.target_positions[0] + 1
        if r.target_ids is None or r.input_ids[cut:] != list(r.target_ids[:-1]):
            raise ConfigError("causal candidate scoring needs inputs rendered with their target ids (teacher forcing)")
        key = (tuple(r.input_ids[:cut]), tuple(r.prompt_positions), r.prompt_offset)
        if key not in index:
            index[key] = len(prefixes)
            prefixes.append(Rendered(r.input_ids[:cut], r.token_type_ids[:cut], list(r.prompt_positions), [cut - 1],
                                     None, prompt_offset=r.prompt_offset))
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
        return _token_forward(model, ids, torch.cat([self.mask[rows], mask], dim=1), positions, cache)

    def extend(self, model: PromptedLM, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """Greedy decoding: feed one token per row (in place, on this cache); the new last hidden `(Q, H)`."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = (self.lengths + step).unsqueeze(1)
        self.last_hidden = _token_forward(model, tokens.unsqueeze(1), self.mask, positions, self.cache)[:, -1]
        return self.last_hidden


def _run_prefixes(model: PromptedLM, prefixes: Sequence[Rendered]) -> _PrefixState:
    batch = collate_for(model, prefixes).to(model.lm.device)
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


def _token_forward(model: PromptedLM, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                   cache: Any) -> torch.Tensor:
    """Last hidden states `(Q, L, H)` of plain token ids fed on top of `cache` (no prompt positions)."""
    with model.precision():
        embeds = model.backbone.input_embeddings()(ids)
        return _body_forward(model, embeds, mask, positions, cache).last_hidden_state


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


# ------------------------------------------------------------------------------------------------ spans
@torch.no_grad()
def predict_span_tokens(model: PromptedLM, rendered: Sequence[Rendered], lengths: Sequence[int], *,
                        batch_size: int = 16, progress: Optional[tqdm] = None) -> list[list[int]]:
    """Per input, the predicted span of `lengths[i]` tokens: argmax at each mask (masked LM, one pass) or greedy
    generation after the pattern (causal LM, an input rendered up to the span, without its target ids)."""
    decode = {BackboneKind.MASKED: _argmax_at_masks, BackboneKind.CAUSAL: _greedy_tokens}[model.backbone.kind]
    out: list[list[int]] = [[] for _ in rendered]
    for idx in length_batches(rendered, batch_size):
        tokens = decode(model, [rendered[i] for i in idx], max(lengths[i] for i in idx))
        for row, i in enumerate(idx):
            out[i] = tokens[row, : lengths[i]].tolist()
        if progress is not None:
            progress.update(1)
    return out


def _argmax_at_masks(model: PromptedLM, rendered: Sequence[Rendered], steps: int) -> torch.Tensor:
    """`(B, T)` argmax token at each mask, one forward."""
    return model.target_logits(_untargeted_batch(model, rendered)).argmax(dim=-1)


def _greedy_tokens(model: PromptedLM, rendered: Sequence[Rendered], steps: int) -> torch.Tensor:
    """`(B, steps)` greedily generated tokens after each input, one cached step per token."""
    state = _run_prefixes(model, rendered)
    hidden, tokens = state.last_hidden, []
    for step in range(steps):
        tokens.append(model.head_log_probs(hidden).argmax(dim=-1))
        if step + 1 < steps:
            hidden = state.extend(model, tokens[-1], step)
    return torch.stack(tokens, dim=1)
