"""Collate rendered examples into padded tensors (right padding; positions stay as the tokenizer made them)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch

from repro.core.template import Rendered


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    token_type_ids: torch.Tensor  # (B, L)
    prompt_index: torch.Tensor  # (B, L): prompt token j (+ the row's prompt_offset) at its position, -1 elsewhere
    target_positions: torch.Tensor  # (B, T): where target logits are read (0 where padded)
    target_mask: torch.Tensor  # (B, T) bool: real target slots
    target_ids: Optional[torch.Tensor]  # (B, T) gold target ids, -100 where padded; None if unknown

    def to(self, device) -> "Batch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in moved.items()})

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def collate(examples: Sequence[Rendered], pad_id: int) -> Batch:
    size = len(examples)
    length = max(len(e.input_ids) for e in examples)
    n_targets = max(len(e.target_positions) for e in examples)
    input_ids = torch.full((size, length), pad_id, dtype=torch.long)
    attention = torch.zeros((size, length), dtype=torch.long)
    types = torch.zeros((size, length), dtype=torch.long)
    prompt_index = torch.full((size, length), -1, dtype=torch.long)
    target_positions = torch.zeros((size, n_targets), dtype=torch.long)
    target_mask = torch.zeros((size, n_targets), dtype=torch.bool)
    has_targets = all(e.target_ids is not None for e in examples)
    target_ids = torch.full((size, n_targets), -100, dtype=torch.long) if has_targets else None
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        input_ids[row, :n] = torch.tensor(ex.input_ids)
        attention[row, :n] = 1
        types[row, :n] = torch.tensor(ex.token_type_ids)
        if ex.prompt_positions:
            prompt_index[row, ex.prompt_positions] = torch.arange(len(ex.prompt_positions)) + ex.prompt_offset
        t = len(ex.target_positions)
        target_positions[row, :t] = torch.tensor(ex.target_positions)
        target_mask[row, :t] = True
        if target_ids is not None:
            target_ids[row, :t] = torch.tensor(ex.target_ids)
    return Batch(input_ids, attention, types, prompt_index, target_positions, target_mask, target_ids)


def pad_id_of(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return candidate
    return 0
