"""Several units' prompt encoders behind one frozen LM: one prompt table, each row reading its own encoder.

`PromptedLM` fills a row's prompt positions from `encoder.prompts()[prompt_index]`. An `EncoderStack` is such an
"encoder" whose table is its encoders' tables one after another; a row rendered for unit r carries
`Rendered.prompt_offset = stack.offsets[r]`, so `collate` shifts its prompt indices into unit r's block. Rows of
many units then share one forward and one backward of the frozen LM, and each encoder gets exactly the gradient
of its own rows (the LM is frozen and in eval mode: rows do not interact).

Only the encoders named in `active` are run (the others' blocks are zeros: no row reads them), so a finished
unit costs nothing. In training mode each encoder runs under its unit's own torch RNG state (`UnitRNG`), so any
dropout inside it draws what it would draw in separate training (the paper's encoders have none, but a
configured `encoder_dropout` would).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import torch
from torch import nn

from repro.ptuning import PromptEncoder

T = TypeVar("T")


class UnitRNG:
    """One torch CPU RNG state per unit: `run(i, fn)` runs `fn` with unit i's state as the global one, keeps
    where it got to, and puts the caller's state back. `reseed(i, seed)` is `torch.manual_seed(seed)` for unit i
    alone (what the single-unit loop does when it starts)."""

    def __init__(self, n_units: int) -> None:
        self.states: list[Optional[torch.Tensor]] = [None] * n_units

    def reseed(self, unit: int, seed: int) -> None:
        saved = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states[unit] = torch.get_rng_state()
        torch.set_rng_state(saved)

    def run(self, unit: int, fn: Callable[[], T]) -> T:
        state = self.states[unit]
        if state is None:
            return fn()
        saved = torch.get_rng_state()
        torch.set_rng_state(state)
        try:
            out = fn()
            self.states[unit] = torch.get_rng_state()
        finally:
            torch.set_rng_state(saved)
        return out


class EncoderStack(nn.Module):
    """A list of prompt encoders presented to `PromptedLM` as one (see the module docstring)."""

    def __init__(self, encoders: Sequence[PromptEncoder]) -> None:
        super().__init__()
        if not encoders:
            raise ValueError("an encoder stack needs at least one encoder")
        self.encoders = nn.ModuleList(encoders)
        sizes = [int(e.total_virtual_tokens) for e in encoders]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.sizes = sizes
        self.token_dim = int(encoders[0].token_dim)
        self.total_virtual_tokens = sum(sizes)
        self.active: Optional[set[int]] = None  # None: every encoder
        self.rng = UnitRNG(len(encoders))
        self._cache: Optional[tuple[tuple, torch.Tensor]] = None
        self._held: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.encoders)

    @contextlib.contextmanager
    def held(self, table: torch.Tensor) -> Iterator[None]:
        """`prompts()` returns `table` inside: a joint step computes the table once, runs its rows through the LM
        in several passes against a detached copy, then backpropagates the copy's gradient into the encoders
        once (one encoder forward and backward per step, and one dropout draw, as in separate training)."""
        self._held = table
        try:
            yield
        finally:
            self._held = None

    def train(self, mode: bool = True) -> "EncoderStack":
        # A mode switch ends an evaluation pass: the fused Adam step leaves the parameters' version counters as
        # they were, so the cache key alone cannot tell that a training step happened in between.
        self._cache = None
        return super().train(mode)

    def prompts(self) -> torch.Tensor:
        """`(sum of sizes, token_dim)`: each active encoder's prompts in its block, zeros for the others."""
        if self._held is not None:
            return self._held
        key = None
        if not torch.is_grad_enabled() and not self.training:  # evaluation: the same table for every batch
            key = (frozenset(self._active()), tuple(p._version for p in self.parameters()))
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        weight = self.encoders[0].embedding.weight
        active = self._active()
        blocks = []
        for i, encoder in enumerate(self.encoders):
            if i not in active:
                blocks.append(torch.zeros(self.sizes[i], self.token_dim, dtype=weight.dtype, device=weight.device))
            elif self.training:
                blocks.append(self.rng.run(i, encoder.prompts))
            else:
                blocks.append(encoder.prompts())
        table = torch.cat(blocks, dim=0)
        self._cache = (key, table) if key is not None else None
        return table

    def _active(self) -> set[int]:
        return set(range(len(self.encoders))) if self.active is None else self.active
