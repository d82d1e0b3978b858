"""Evaluation that runs a text shared by many examples once: MultiRC's passage on a causal LM.

MultiRC asks one yes/no question per answer option, every option of every question of a passage repeating the
passage (`passage . Question: q ? Is it a ? [MASK] .`): its dev set is 4,848 inputs of about 250 tokens but only
83 passages. On a causal LM the passage's keys and values do not depend on what follows it, so the examples that
start with the same tokens run that common start once (a key/value cache) and each example feeds only its own
rest on top of a copy of it: about a tenth of the tokens. Masked LMs attend both ways and are evaluated as before.

How examples are grouped: sorted by their token ids, neighbours that share at least `MIN_SHARED` leading tokens
form a group whose shared start (the cut) is the longest start all of them have, cut back so that each example's
target position stays in its own part and the prompt tokens before the cut are the leading ones (j = 0..k-1) at
the same places in every member (and the same prompt table offset; members that differ there go apart). An example alone in its group is evaluated by
the plain path (`repro.core.inference.argmax_candidates`). In float32 the scores equal the plain path's to rounding
(`tests/test_shared_prefix.py`); in bf16 they differ by the rounding of a cached attention, so the tasks that use
it say so (`Task.shared_prefixes`) and their results' fingerprints carry this module's code hash
(`repro.experiment.superglue_config.SuperGlueConfig.fingerprint_data`).

This module is outside the scorer-code hash (`repro.experiment.fingerprints.SCORER_CODE`) on purpose: the results
of tasks that never run it keep their fingerprints. It reuses the cache machinery of `repro.core.inference`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from repro.core.batch import collate, pad_id_of
from repro.core.inference import (
    EVAL_TOKENS,
    _body_forward,
    _progress_batches,
    _run_prefixes,
    _select_cache_rows,
    argmax_candidates,
    length_batches,
)
from repro.core.model import PromptedLM
from repro.core.template import Rendered
from repro.scorers.base import Scorer
from repro.scorers.classification import VerbalizerScorer

#: Fewest leading tokens two examples must share to run them once (below it a cache copy costs more than it saves).
MIN_SHARED = 32
#: The code whose hash joins the fingerprint of a task that evaluates through this module.
CODE = ("repro/shared_prefix.py",)


@dataclass
class Group:
    """Examples (`members`, indices into the rendered list) that share their first `cut` tokens."""

    cut: int
    members: list[int]


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _cut_limit(r: Rendered, cut: int) -> int:
    """`cut` moved back so that the target position and the prompt tokens after it stay in the example's part."""
    cut = min(cut, r.target_positions[0])
    positions = list(r.prompt_positions)
    if positions != sorted(positions):  # prompt tokens out of order: keep every one of them after the cut
        cut = min([cut, *positions])
    return cut


def _prefix_key(r: Rendered, cut: int) -> tuple:
    return (tuple(r.input_ids[:cut]), tuple(p for p in r.prompt_positions if p < cut), r.prompt_offset)


def shared_groups(rendered: Sequence[Rendered], min_shared: int = MIN_SHARED) -> list[Group]:
    """The groups of examples that share at least `min_shared` leading tokens (see the module docstring);
    every index appears in exactly one group; a group of cut 0 (a singleton, or a start too short to share) is
    evaluated by the plain path."""
    order = sorted(range(len(rendered)), key=lambda i: rendered[i].input_ids)
    runs: list[list[int]] = []
    for prev, i in zip([None, *order], order):
        if prev is not None and common_length(rendered[prev].input_ids, rendered[i].input_ids) >= min_shared:
            runs[-1].append(i)
        else:
            runs.append([i])
    groups: list[Group] = []
    for run in runs:
        if len(run) == 1:
            groups.append(Group(0, run))
            continue
        first = rendered[run[0]].input_ids
        cut = min(common_length(first, rendered[i].input_ids) for i in run)
        cut = min(_cut_limit(rendered[i], cut) for i in run)
        before = [{p for p in rendered[i].prompt_positions if p < cut} for i in run]
        differing = set().union(*before) - set.intersection(*before)
        cut = min([cut, *differing])  # a prompt token at a place only some of them have: cut before it
        by_key: dict[tuple, list[int]] = defaultdict(list)
        for i in run:  # the prompt tokens before the cut must be alike too
            by_key[_prefix_key(rendered[i], cut)].append(i)
        for members in by_key.values():
            shared = cut >= min_shared and len(members) > 1
            groups.append(Group(cut if shared else 0, members))
    return groups


def _prefix_of(r: Rendered, cut: int) -> Rendered:
    before = [p for p in r.prompt_positions if p < cut]
    return Rendered(r.input_ids[:cut], r.token_type_ids[:cut], before, [cut - 1], None, prompt_offset=r.prompt_offset)


def _rest_of(r: Rendered, cut: int) -> Rendered:
    """The example after the cut: its prompt tokens renumbered from the first one past the cut."""
    before = sum(1 for p in r.prompt_positions if p < cut)
    return Rendered(r.input_ids[cut:], r.token_type_ids[cut:], [p - cut for p in r.prompt_positions if p >= cut],
                    [t - cut for t in r.target_positions], None, prompt_offset=r.prompt_offset + before)


@torch.no_grad()
def candidate_scores(model: PromptedLM, rendered: Sequence[Rendered], candidate_ids: torch.Tensor, *,
                     batch_size: int = 32, max_tokens: int = EVAL_TOKENS, min_shared: int = MIN_SHARED,
                     desc: str = "eval", quiet: bool = False) -> torch.Tensor:
    """`(N, C)` logits of `candidate_ids` at each example's first target position, examples that share a start
    running it once (causal LMs). The argmax of a row is what `argmax_candidates` returns for it."""
    model.eval()
    scores = torch.empty(len(rendered), len(candidate_ids))
    groups = shared_groups(rendered, min_shared)
    alone = [i for g in groups if not g.cut for i in g.members]
    for idx, batch in _progress_batches(model, [rendered[i] for i in alone], batch_size, desc, quiet=True,
                                        max_tokens=max_tokens):
        scores[[alone[j] for j in idx]] = model.candidate_logits(batch, candidate_ids)[:, 0, :].cpu()
    shared = [g for g in groups if g.cut]
    prefixes = [_prefix_of(rendered[g.members[0]], g.cut) for g in shared]
    batches = length_batches(prefixes, batch_size, max_tokens)
    for idx in tqdm(batches, desc=desc, disable=quiet, leave=False, unit="passage batch"):
        state = _run_prefixes(model, [prefixes[g] for g in idx])
        todo = [(row, i) for row, g in enumerate(idx) for i in shared[g].members]
        rests = [_rest_of(rendered[i], shared[g].cut) for g in idx for i in shared[g].members]
        for chunk in length_batches(rests, batch_size, max_tokens):
            rows = torch.tensor([todo[j][0] for j in chunk])
            logits = _rest_logits(model, state, rows, [rests[j] for j in chunk], candidate_ids)
            scores[[todo[j][1] for j in chunk]] = logits.cpu()
    return scores


def _rest_logits(model: PromptedLM, state: Any, rows: torch.Tensor, rests: list[Rendered],
                 candidate_ids: torch.Tensor) -> torch.Tensor:
    """`(k, C)` candidate logits at each rest's target position, the rest fed on a copy of its prefix's cache
    (`rows`: the prefix row of `state` under each rest)."""
    device = model.lm.device
    batch = collate(rests, pad_id_of(model.backbone.tokenizer)).to(device)
    rows = rows.to(device)
    width = batch.input_ids.shape[1]
    positions = state.lengths[rows].unsqueeze(1) + torch.arange(width, device=device)
    mask = torch.cat([state.mask[rows], batch.attention_mask.to(state.mask.dtype)], dim=1)
    cache = _select_cache_rows(state.cache, rows, model.backbone.config)
    with model.precision():
        hidden = _body_forward(model, model.inputs_embeds(batch), mask, positions, cache).last_hidden_state
    at_target = hidden[torch.arange(len(rests), device=device), batch.target_positions[:, 0]]
    return model.hidden_candidate_logits(at_target, candidate_ids)


def argmax_shared(model: PromptedLM, rendered: Sequence[Rendered], candidate_ids: torch.Tensor, *,
                  batch_size: int = 32, desc: str = "eval", quiet: bool = False) -> torch.Tensor:
    """Per example, the index of its best candidate: shared starts on a causal LM, the plain path otherwise."""
    if not model.backbone.is_causal:
        return argmax_candidates(model, rendered, candidate_ids, batch_size=batch_size, desc=desc, quiet=quiet)
    return candidate_scores(model, rendered, candidate_ids, batch_size=batch_size, desc=desc,
                            quiet=quiet).argmax(dim=-1)


class SharedPrefixVerbalizerScorer(VerbalizerScorer):
    """A verbalizer scorer (one token per word) whose evaluation runs shared starts once; training unchanged."""

    @torch.no_grad()
    def predict_inputs(self, inputs: Sequence[Any], *, desc: str = "eval") -> list[Any]:
        if not inputs:
            return []
        best = argmax_shared(self.model, list(inputs), self.candidate_ids, batch_size=self.ctx.eval_batch_size,
                             desc=desc, quiet=self.ctx.quiet)
        return [self.labels[i] for i in best.tolist()]


def adopt(scorer: Scorer) -> Scorer:
    """`scorer` evaluating shared starts once where its task asks (`Task.shared_prefixes`) and it can (a
    verbalizer scorer with one token per word on a causal LM); any other scorer as it is."""
    if (type(scorer) is VerbalizerScorer and scorer.ctx.task.shared_prefixes and scorer.ctx.causal
            and scorer.single_token):
        return SharedPrefixVerbalizerScorer(scorer.ctx)
    return scorer

