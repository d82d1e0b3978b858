"""`PromptEncoderConfig`: PEFT's P-tuning config, field for field, so that configs and encoders move
between this suite and `peft` (same names, types and defaults; strings and enums both accepted)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Union


class PromptEncoderReparameterizationType(str, enum.Enum):
    """How the prompt embeddings are reparameterised before they reach the LM. MLP and LSTM are PEFT's values.

    NONE is this suite's (the paper's ablation of the reparameterisation): the encoder's `nn.Embedding` is the
    trainable prompt itself and goes to the LM as it is. It shares PEFT's inference-mode layout (only
    `embedding.weight`, returned unchanged), but is its own value rather than `inference_mode=True`, because that
    flag means "finished prompts computed by some encoder" (an exported or imported adapter): a config must still
    say what a trained encoder was trained as, so that saved encoders, resumed runs and exported adapters of a
    `none` run are not taken for LSTM/MLP ones. PEFT loads a NONE adapter as any P-tuning adapter (always in
    inference mode, where the type is not read); a trainable `peft.PromptEncoder` refuses it ("Prompt encoder
    type not recognized")."""

    MLP = "MLP"
    LSTM = "LSTM"
    NONE = "NONE"


@dataclass
class PromptEncoderConfig:
    """Configuration of a `PromptEncoder` (the fields of `peft.PromptEncoderConfig` and its bases)."""

    task_type: Optional[str] = field(default=None, metadata={"help": "PEFT task type, e.g. CAUSAL_LM (informative here)."})
    peft_type: Optional[str] = field(default=None, metadata={"help": "Set to P_TUNING (the only valid type)."})
    auto_mapping: Optional[dict] = field(default=None, metadata={"help": "PEFT auto mapping (kept for interop)."})
    base_model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Backbone this encoder belongs to."})
    revision: Optional[str] = field(default=None, metadata={"help": "Backbone revision."})
    inference_mode: bool = field(default=False, metadata={"help": "Build no heads: the embedding holds the final prompts."})
    num_virtual_tokens: Optional[int] = field(default=None, metadata={"help": "Number of prompt (virtual) tokens."})
    token_dim: Optional[int] = field(default=None, metadata={"help": "Backbone input-embedding size."})
    num_transformer_submodules: Optional[int] = field(default=None, metadata={"help": "1 for decoder/encoder-only, 2 for seq2seq."})
    num_attention_heads: Optional[int] = field(default=None, metadata={"help": "Backbone attention heads (interop)."})
    num_layers: Optional[int] = field(default=None, metadata={"help": "Backbone layers (interop)."})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": "Extra trainable modules (interop)."})
    encoder_reparameterization_type: Union[str, PromptEncoderReparameterizationType] = field(
        default=PromptEncoderReparameterizationType.MLP,
        metadata={"help": "MLP (PEFT's default), LSTM (the paper's) or NONE (no reparameterisation)."},
    )
    encoder_hidden_size: Optional[int] = field(default=None, metadata={
        "help": "Encoder hidden size; defaults to token_dim (unused by NONE)."})
    encoder_num_layers: int = field(default=2, metadata={"help": "LSTM layers (ignored by MLP)."})
    encoder_dropout: float = field(default=0.0, metadata={"help": "Dropout between LSTM layers."})

    def __post_init__(self) -> None:
        if self.peft_type is not None and str(getattr(self.peft_type, "value", self.peft_type)) != "P_TUNING":
            raise ValueError(f"peft_type must be 'P_TUNING', got {self.peft_type!r}")
        self.peft_type = "P_TUNING"
        self.encoder_reparameterization_type = _parse_encoder_type(self.encoder_reparameterization_type)
        for name in ("num_virtual_tokens", "token_dim"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"{name} is required (a positive integer)")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_transformer_submodules not in (None, 1, 2):
            raise ValueError(f"num_transformer_submodules must be 1 or 2, got {self.num_transformer_submodules!r}")
        if self.encoder_hidden_size is None:
            self.encoder_hidden_size = self.token_dim
        if not isinstance(self.encoder_hidden_size, int) or self.encoder_hidden_size <= 0:
            raise ValueError(f"encoder_hidden_size must be a positive integer, got {self.encoder_hidden_size!r}")
        if not isinstance(self.encoder_num_layers, int) or self.encoder_num_layers <= 0:
            raise ValueError(f"encoder_num_layers must be a positive integer, got {self.encoder_num_layers!r}")
        if not 0.0 <= float(self.encoder_dropout) < 1.0:
            raise ValueError(f"encoder_dropout must be in [0, 1), got {self.encoder_dropout!r}")

    @property
    def is_prompt_learning(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the encoder type as its string value (PEFT's adapter_config.json form)."""
        data = asdict(self)
        data["encoder_reparameterization_type"] = self.encoder_reparameterization_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PromptEncoderConfig":
        """Build from a dict such as PEFT's adapter_config.json, ignoring keys this config does not have."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _parse_encoder_type(value: Union[str, PromptEncoderReparameterizationType]) -> PromptEncoderReparameterizationType:
    if isinstance(value, PromptEncoderReparameterizationType):
        return value
    try:
        return PromptEncoderReparameterizationType(str(value).upper())
    except ValueError:
        valid = ", ".join(t.value for t in PromptEncoderReparameterizationType)
        raise ValueError(f"unknown encoder_reparameterization_type {value!r}; valid: {valid}") from None
