"""Batched inference over rendered examples: argmax within a candidate vocabulary, and log-probabilities
of multi-token answers. Examples are batched by length (less padding) and results returned in input order."""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from repro.core.batch import collate, pad_id_of
from repro.core.model import PromptedLM
from repro.core.template import Rendered


def length_batches(rendered: Sequence[Rendered], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (stable: ties keep input order)."""
    order = sorted(range(len(rendered)), key=lambda i: len(rendered[i].input_ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def argmax_candidates(
    model: PromptedLM,
    rendered: Sequence[Rendered],
    candidate_ids: torch.Tensor,
    *,
    batch_size: int = 64,
    desc: str = "eval",
    quiet: bool = False,
) -> torch.Tensor:
    """For each example, the index (into `candidate_ids`) of the best candidate at its first target position."""
    model.eval()
    pad = pad_id_of(model.backbone.tokenizer)
    best = torch.empty(len(rendered), dtype=torch.long)
    for idx in tqdm(length_batches(rendered, batch_size), desc=desc, disable=quiet, leave=False, unit="batch"):
        logits = model.candidate_logits(collate([rendered[i] for i in idx], pad), candidate_ids)
        best[idx] = logits[:, 0, :].argmax(dim=-1).cpu()
    return best


@torch.no_grad()
def answer_log_probs(
    model: PromptedLM,
    rendered: Sequence[Rendered],
    *,
    batch_size: int = 32,
    desc: str = "score",
    quiet: bool = False,
) -> list[list[float]]:
    """Per example, the log-probability of each of its target tokens (`rendered.target_ids`), in order."""
    model.eval()
    pad = pad_id_of(model.backbone.tokenizer)
    out: list[list[float]] = [[] for _ in rendered]
    for idx in tqdm(length_batches(rendered, batch_size), desc=desc, disable=quiet, leave=False, unit="batch"):
        batch = collate([rendered[i] for i in idx], pad)
        log_probs = model.target_log_probs(batch)
        gold = batch.target_ids.to(log_probs.device).clamp(min=0)
        picked = log_probs.gather(-1, gold.unsqueeze(-1)).squeeze(-1).cpu()
        for row, i in enumerate(idx):
            n = len(rendered[i].target_positions)
            out[i] = picked[row, :n].tolist()
    return out
