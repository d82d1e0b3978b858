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
    """Right-padded tensors of `examples`. Each field is built as one nested list and converted once (no
    per-row tensor construction: with hundreds of short LAMA facts per batch the per-row calls cost more
    than the copy)."""
    length = max(len(e.input_ids) for e in examples)
    n_targets = max(len(e.target_positions) for e in examples)
    has_targets = all(e.target_ids is not None for e in examples)
    ids, attention, types, prompt_index, positions, target_mask, target_ids = [], [], [], [], [], [], []
    for ex in examples:
        pad = length - len(ex.input_ids)
        ids.append(ex.input_ids + [pad_id] * pad)
        attention.append([1] * len(ex.input_ids) + [0] * pad)
        types.append(ex.token_type_ids + [0] * pad)
        row = [-1] * length
        for j, position in enumerate(ex.prompt_positions):
            row[position] = j + ex.prompt_offset
        prompt_index.append(row)
        t_pad = n_targets - len(ex.target_positions)
        positions.append(ex.target_positions + [0] * t_pad)
        target_mask.append([True] * len(ex.target_positions) + [False] * t_pad)
        if has_targets:
            target_ids.append(list(ex.target_ids) + [-100] * t_pad)
    long = torch.long
    return Batch(torch.tensor(ids, dtype=long), torch.tensor(attention, dtype=long), torch.tensor(types, dtype=long),
                 torch.tensor(prompt_index, dtype=long), torch.tensor(positions, dtype=long),
                 torch.tensor(target_mask, dtype=torch.bool),
                 torch.tensor(target_ids, dtype=long) if has_targets else None)


def pad_id_of(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return candidate
    return 0
