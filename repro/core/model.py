"""The prompted LM: a backbone whose prompt positions carry a prompt encoder's outputs.

Injection embeds the ids with the backbone's own input-embedding module (some models scale inside it), then
overwrites the prompt positions with the encoder output: no extra positions, so attention masks and position
ids stay as the tokenizer made them. Scoring runs the LM head only at the positions read, and for a plain
linear head only over the candidate ids asked for (the head is most of the cost of a small model).

This module is the model's forward (hidden states at the target positions, and `head_logits`: the one
LM head -> float32 -> soft-cap path, which `head_log_probs` normalises). Everything that scores with it
(batching, gathering target log-probabilities, key/value-cache sharing, decoding) is in
`repro.core.inference`. `ClassifierLM` (CLS-FT) lives here too: it is a model, the prompted LM plus a head.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
from torch import nn

from repro.core.backbone import COMPUTE_DTYPES, Backbone
from repro.core.batch import Batch
from repro.errors import ConfigError
from repro.ptuning import PromptEncoder


class PromptedLM(nn.Module):
    """Backbone + optional prompt encoder. `train_backbone=False` freezes the LM (only the encoder trains)."""

    def __init__(
        self,
        backbone: Backbone,
        encoder: Optional[PromptEncoder] = None,
        *,
        train_backbone: bool = False,
        dtype: str = "float32",
        recompute_activations: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.lm = backbone.model
        self.encoder = encoder
        self.train_backbone = train_backbone
        self.compute_dtype = COMPUTE_DTYPES[dtype]
        self.lm.requires_grad_(train_backbone)
        # A frozen LM can hold its weights in the compute dtype (fastest); a trained one keeps fp32 master
        # weights and runs under autocast.
        self._autocast = train_backbone and self.compute_dtype != torch.float32
        if not self._autocast:
            self.lm.to(self.compute_dtype)
        if train_backbone:  # the backbone object outlives this model: set the switch either way
            _set_recompute(self.lm, recompute_activations, backbone.name)
        if encoder is not None:
            encoder.to(self.lm.device)
        self._candidate_cache: dict[tuple, tuple[torch.Tensor, Optional[torch.Tensor]]] = {}

    @property
    def device(self) -> torch.device:
        return self.lm.device

    # ---------------------------------------------------------------- parameters
    def trainable_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups by role: 'encoder' and 'backbone' (each may be empty)."""
        groups = {"encoder": [], "backbone": []}
        if self.encoder is not None:
            groups["encoder"] = [p for p in self.encoder.parameters() if p.requires_grad]
        if self.train_backbone:
            groups["backbone"] = [p for p in self.lm.parameters() if p.requires_grad]
        return groups

    def train(self, mode: bool = True) -> "PromptedLM":
        super().train(mode)
        # A frozen LM stays in eval mode (no dropout), as in the paper's frozen-LM experiments.
        if not self.train_backbone:
            self.lm.eval()
        return self

    # ---------------------------------------------------------------- forward
    def inputs_embeds(self, batch: Batch) -> torch.Tensor:
        embeds = self.backbone.input_embeddings()(batch.input_ids)
        is_prompt = batch.prompt_index >= 0
        if self.encoder is None or not bool(is_prompt.any()):
            return embeds
        prompts = self.encoder.prompts().to(embeds.dtype)  # (n_prompt, H), shared by every row
        gathered = prompts[batch.prompt_index.clamp(min=0)]
        return torch.where(is_prompt.unsqueeze(-1), gathered, embeds)

    def target_hidden(self, batch: Batch) -> torch.Tensor:
        """Last hidden states at the target positions, `(B, T, H)`."""
        batch = batch.to(self.device)
        with self.precision():
            # A batch without padding needs no mask: the model then builds none (and its attention can take
            # the plain causal / full path instead of a masked one).
            mask = None if _unpadded(batch) else batch.attention_mask
            kwargs = {"inputs_embeds": self.inputs_embeds(batch), "attention_mask": mask}
            if self.backbone.uses_token_types:
                kwargs["token_type_ids"] = batch.token_type_ids
            if self.backbone.is_causal:
                kwargs["use_cache"] = False
            hidden = self.backbone.body()(**kwargs).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device).unsqueeze(1)
        return hidden[rows, batch.target_positions]

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits of hidden states `(..., H)` -> `(..., V)`, float32, soft-capped where the
        config asks: the one LM-head path, shared by full forwards and key/value-cache continuations."""
        with self.precision():
            logits = self.backbone.head()(hidden)
        return softcap(logits.float(), self.backbone.config)

    def head_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-softmax of `head_logits` over the vocabulary."""
        return torch.log_softmax(self.head_logits(hidden), dim=-1)

    def target_logits(self, batch: Batch) -> torch.Tensor:
        """Full-vocabulary logits at the target positions, `(B, T, V)`, in float32."""
        return self.head_logits(self.target_hidden(batch))

    def target_log_probs(self, batch: Batch) -> torch.Tensor:
        return self.head_log_probs(self.target_hidden(batch))

    def candidate_logits(self, batch: Batch, candidate_ids: torch.Tensor) -> torch.Tensor:
        """Logits of `candidate_ids` (C,) at the target positions, `(B, T, C)`: for argmax within a vocabulary.

        A plain linear head is sliced to the candidates before the matmul; other heads (masked LMs' transform +
        decoder) run in full and are gathered.
        """
        return self.hidden_candidate_logits(self.target_hidden(batch), candidate_ids)

    def hidden_candidate_logits(self, hidden: torch.Tensor, candidate_ids: torch.Tensor) -> torch.Tensor:
        """Logits of `candidate_ids` (C,) for hidden states `(..., H)` -> `(..., C)`, float32 (see
        `candidate_logits`; also used on hidden states continued from a key/value cache)."""
        head = self.backbone.head()
        candidate_ids = candidate_ids.to(hidden.device)
        with self.precision():
            if isinstance(head, nn.Linear) and _softcap_value(self.backbone.config) is None:
                weight, bias = self._sliced_head(head, candidate_ids)
                logits = torch.nn.functional.linear(hidden.to(weight.dtype), weight, bias)
            else:
                logits = softcap(head(hidden), self.backbone.config)[..., candidate_ids]
        return logits.float()

    def loss(self, batch: Batch) -> torch.Tensor:
        """Cross-entropy of the gold target ids over the full vocabulary, averaged over target tokens."""
        log_probs = self.target_log_probs(batch)
        gold = batch.target_ids.to(log_probs.device).flatten()
        return torch.nn.functional.nll_loss(log_probs.flatten(0, 1), gold, ignore_index=-100)

    def _sliced_head(self, head: nn.Linear, candidate_ids: torch.Tensor):
        """The head's rows of `candidate_ids`, kept between calls only for a frozen head. A trained head is sliced
        afresh each call: the fused Adam step updates weights without bumping their version counter, so a cache
        keyed on the version served the rows of the first dev check to every later one (selection scores of a
        trained LM drifted from what its restored state scores)."""
        if head.weight.requires_grad:
            weight = head.weight.detach()[candidate_ids]
            return weight, head.bias.detach()[candidate_ids] if head.bias is not None else None
        key = (candidate_ids.data_ptr(), candidate_ids.numel(), head.weight.data_ptr(), head.weight._version)
        if key not in self._candidate_cache:
            self._candidate_cache.clear()
            with torch.inference_mode(False):  # a plain tensor even when built under inference mode
                weight = head.weight.detach()[candidate_ids]
                bias = head.bias.detach()[candidate_ids] if head.bias is not None else None
            self._candidate_cache[key] = (weight, bias)
        return self._candidate_cache[key]

    def precision(self):
        """The context to run the LM in: autocast for a trained LM in bf16, else nothing."""
        if self._autocast:
            return torch.autocast(device_type=self.lm.device.type, dtype=self.compute_dtype)
        return contextlib.nullcontext()


def _set_recompute(lm: nn.Module, enabled: bool, name: str) -> None:
    """Gradient checkpointing of a trained LM (`--recompute-activations`): the model's own per-layer switch, which
    acts only in training mode, without the reentrant variant (our inputs are embeddings, not token ids)."""
    new_api = hasattr(lm, "activation_checkpointing_enable")  # transformers 5 renamed the switch
    if not enabled:
        if recomputes_activations(lm):
            (lm.activation_checkpointing_disable if new_api else lm.gradient_checkpointing_disable)()
        return
    if not getattr(lm, "supports_gradient_checkpointing", False):
        raise ConfigError(f"--recompute-activations: backbone {name!r} does not support gradient checkpointing")
    if new_api:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def recomputes_activations(lm: nn.Module) -> bool:
    """Whether gradient checkpointing is on for any layer of `lm` (the flag transformers sets per layer)."""
    return any(getattr(m, "gradient_checkpointing", False) for m in lm.modules())


def _unpadded(batch: Batch) -> bool:
    """True when every row is as long as the batch (no padding position)."""
    return bool(batch.attention_mask.all())


def _softcap_value(config) -> Optional[float]:
    return getattr(config, "final_logit_softcapping", None)


def softcap(logits: torch.Tensor, config) -> torch.Tensor:
    """Gemma-style final logit soft-capping, where the config asks for it (a no-op otherwise)."""
    cap = _softcap_value(config)
    return logits if cap is None else torch.tanh(logits / cap) * cap


class ClassifierLM(nn.Module):
    """CLS-FT: the prompted LM (no encoder, LM trained) plus a linear head at the read position."""

    def __init__(self, prompted: PromptedLM, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.prompted = prompted
        hidden = int(prompted.backbone.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)
        std = float(getattr(prompted.backbone.config, "initializer_range", 0.02) or 0.02)
        nn.init.normal_(self.head.weight, std=std)
        nn.init.zeros_(self.head.bias)
        self.head.to(prompted.lm.device)

    @property
    def backbone(self) -> Backbone:
        return self.prompted.backbone

    def trainable_parameters(self) -> dict[str, list[nn.Parameter]]:
        groups = self.prompted.trainable_parameters()
        return {"encoder": groups["encoder"], "backbone": groups["backbone"] + list(self.head.parameters())}

    def logits(self, batch: Batch) -> torch.Tensor:
        """`(B, labels)` logits of the head on the hidden state at each row's (single) target position."""
        hidden = self.prompted.target_hidden(batch)[:, 0].float()
        return self.head(self.dropout(hidden))
