"""`PromptEncoder`: turns prompt-token indices into continuous prompt embeddings.

Same modules, state-dict names and numbers as `peft.PromptEncoder`, so weights move between the two:
- MLP: Linear(d, h) ReLU Linear(h, h) ReLU Linear(h, d).
- LSTM: bidirectional LSTM (h per direction, `encoder_num_layers` layers) then Linear(2h, 2h) ReLU Linear(2h, d).
  The paper's LAMA encoder is this with h = d / 2 (see `paper_lstm_config`).
- NONE (no reparameterisation, the ablation): no heads; the embedding rows are the prompts, trained directly.
  The embedding is built first and with the same default init (`nn.Embedding`: N(0, 1)) in every type, so under
  one seed a NONE encoder starts from the very rows an LSTM or MLP encoder feeds its heads: only the
  reparameterisation differs. Same layout as an inference-mode encoder (state dict `embedding.weight` only).
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import nn

from repro.ptuning.config import PromptEncoderConfig, PromptEncoderReparameterizationType


class PromptEncoder(nn.Module):
    """Input `(batch, total_virtual_tokens)` indices; output `(batch, total_virtual_tokens, token_dim)`."""

    def __init__(self, config: PromptEncoderConfig, *, lstm_mlp_hidden: Optional[int] = None) -> None:
        """`lstm_mlp_hidden`: the LSTM head's MLP middle width (default 2h, PEFT's; h gives the authors'
        few-shot shape Linear(2h, h) ReLU Linear(h, d), THUDM/P-tuning PT-Fewshot/pet/wrapper.py). PEFT's
        adapter export holds the computed prompts, so it works for either width; `save_encoder` records it."""
        super().__init__()
        self.lstm_mlp_hidden = lstm_mlp_hidden
        self.config = config
        self.token_dim = config.token_dim
        self.input_size = self.token_dim
        self.output_size = self.token_dim
        self.hidden_size = config.encoder_hidden_size
        self.total_virtual_tokens = config.num_virtual_tokens * (config.num_transformer_submodules or 1)
        self.encoder_type = config.encoder_reparameterization_type

        self.embedding = nn.Embedding(self.total_virtual_tokens, self.token_dim)
        if self.direct:
            return
        if self.encoder_type == PromptEncoderReparameterizationType.LSTM:
            self.lstm_head = nn.LSTM(
                input_size=self.input_size,
                hidden_size=self.hidden_size,
                num_layers=config.encoder_num_layers,
                dropout=config.encoder_dropout,
                bidirectional=True,
                batch_first=True,
            )
            middle = lstm_mlp_hidden or self.hidden_size * 2
            self.mlp_head = nn.Sequential(
                nn.Linear(self.hidden_size * 2, middle),
                nn.ReLU(),
                nn.Linear(middle, self.output_size),
            )
        else:
            if config.encoder_num_layers != 2:
                warnings.warn(
                    f"for {self.encoder_type.value}, the argument `encoder_num_layers` is ignored. "
                    "Exactly 2 MLP layers are used.",
                    stacklevel=2,
                )
            self.mlp_head = nn.Sequential(
                nn.Linear(self.input_size, self.hidden_size),
                nn.ReLU(),
                nn.Linear(self.hidden_size, self.hidden_size),
                nn.ReLU(),
                nn.Linear(self.hidden_size, self.output_size),
            )

    @property
    def direct(self) -> bool:
        """Whether the embedding rows are the prompts themselves (no heads): an inference-mode encoder (finished
        prompts, e.g. an imported PEFT adapter) or a NONE one (prompts trained directly)."""
        return bool(self.config.inference_mode) or self.encoder_type == PromptEncoderReparameterizationType.NONE

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        embeds = self.embedding(indices)
        if self.direct:
            return embeds
        if self.encoder_type == PromptEncoderReparameterizationType.LSTM:
            return self.mlp_head(self.lstm_head(embeds)[0])
        return self.mlp_head(embeds)

    def prompts(self) -> torch.Tensor:
        """All prompt embeddings, `(total_virtual_tokens, token_dim)`: computed once per batch, shared by its rows."""
        indices = torch.arange(self.total_virtual_tokens, device=self.embedding.weight.device)
        return self.forward(indices.unsqueeze(0))[0]


def paper_lstm_config(num_virtual_tokens: int, token_dim: int, **overrides) -> PromptEncoderConfig:
    """The paper's LAMA encoder: biLSTM (token_dim/2 per direction, 2 layers, dropout 0) + 2-layer MLP."""
    settings = dict(
        num_virtual_tokens=num_virtual_tokens,
        token_dim=token_dim,
        num_transformer_submodules=1,
        encoder_reparameterization_type=PromptEncoderReparameterizationType.LSTM,
        encoder_hidden_size=max(1, token_dim // 2),
        encoder_num_layers=2,
        encoder_dropout=0.0,
    )
    settings.update(overrides)
    return PromptEncoderConfig(**settings)
