"""The P-tuning method: PEFT-compatible prompt encoder and adapter import/export."""

from repro.ptuning.config import PromptEncoderConfig, PromptEncoderReparameterizationType
from repro.ptuning.encoder import PromptEncoder, paper_lstm_config
from repro.ptuning.io import export_peft_adapter, import_peft_adapter, load_encoder, save_encoder

__all__ = [
    "PromptEncoder",
    "PromptEncoderConfig",
    "PromptEncoderReparameterizationType",
    "export_peft_adapter",
    "import_peft_adapter",
    "load_encoder",
    "paper_lstm_config",
    "save_encoder",
]
