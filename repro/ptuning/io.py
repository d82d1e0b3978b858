"""Saving and loading prompt encoders.

- The suite's own format keeps the encoder's *weights* (embedding, LSTM/MLP heads; a NONE encoder has only
  the embedding), its config and the template, so that training can resume from it.
- PEFT's adapter format (`adapter_config.json` + `adapter_model.safetensors`) keeps only the encoder's output
  embeddings (`prompt_embeddings`) and only describes prepended virtual tokens: export is offered for
  prefix-only templates, and an imported adapter becomes an inference-mode encoder holding those outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import load_file, save_file

from repro.atomic import atomic_write
from repro.errors import ConfigError
from repro.ptuning.config import PromptEncoderConfig
from repro.ptuning.encoder import PromptEncoder

ENCODER_WEIGHTS = "prompt_encoder.safetensors"
ENCODER_META = "prompt_encoder.json"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"


def save_encoder(encoder: PromptEncoder, directory: Union[str, Path], *, template: Optional[str] = None) -> Path:
    """Write the encoder's weights, config and template to `directory` (created; files replaced atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    atomic_write(directory / ENCODER_WEIGHTS, lambda p: save_file(state, str(p)))
    meta = {"config": encoder.config.to_dict(), "template": template}
    if encoder.lstm_mlp_hidden is not None:  # the authors' few-shot head width (not a PEFT config field)
        meta["lstm_mlp_hidden"] = encoder.lstm_mlp_hidden
    atomic_write(directory / ENCODER_META, lambda p: p.write_text(json.dumps(meta, indent=2)))
    return directory


def load_encoder(directory: Union[str, Path]) -> tuple[PromptEncoder, Optional[str]]:
    """Inverse of `save_encoder`: the encoder (weights restored) and the template it was trained with."""
    directory = Path(directory)
    meta_path = directory / ENCODER_META
    if not meta_path.is_file():
        raise ConfigError(f"{directory}: no {ENCODER_META}; not a saved prompt encoder")
    meta = json.loads(meta_path.read_text())
    encoder = PromptEncoder(PromptEncoderConfig.from_dict(meta["config"]), lstm_mlp_hidden=meta.get("lstm_mlp_hidden"))
    encoder.load_state_dict(load_file(str(directory / ENCODER_WEIGHTS)))
    return encoder, meta.get("template")


def export_peft_adapter(
    encoder: PromptEncoder,
    directory: Union[str, Path],
    *,
    template=None,
    base_model_name_or_path: Optional[str] = None,
    task_type: str = "CAUSAL_LM",
    num_attention_heads: Optional[int] = None,
    num_layers: Optional[int] = None,
) -> Path:
    """Write a folder that `peft.PeftModel.from_pretrained` loads (P_TUNING, inference mode).

    The prompts are computed in eval mode (no dropout). Only prefix-only templates can be expressed in PEFT.
    A NONE encoder's prompts are its embedding rows; its type stays `NONE` in the config (PEFT loads adapters in
    inference mode, where the type is not read), so the adapter still says it was trained without heads.
    """
    if template is not None and not template.is_prefix_only():
        raise ConfigError(
            f"template {template.source!r} places prompt tokens after other tokens; PEFT can only prepend "
            "virtual tokens. Keep the suite's own checkpoint (save_encoder) for this template."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        prompts = encoder.prompts().detach().cpu().float().contiguous()
    encoder.train(was_training)
    config = encoder.config.to_dict()
    config.update(
        peft_type="P_TUNING",
        task_type=task_type,
        inference_mode=True,
        base_model_name_or_path=base_model_name_or_path or config.get("base_model_name_or_path"),
        num_transformer_submodules=config.get("num_transformer_submodules") or 1,
        num_attention_heads=num_attention_heads or config.get("num_attention_heads"),
        num_layers=num_layers or config.get("num_layers"),
    )
    atomic_write(directory / PEFT_WEIGHTS, lambda p: save_file({"prompt_embeddings": prompts}, str(p)))
    atomic_write(directory / PEFT_CONFIG, lambda p: p.write_text(json.dumps(config, indent=2, sort_keys=True)))
    return directory


def import_peft_adapter(directory: Union[str, Path]) -> PromptEncoder:
    """Read a PEFT P-tuning adapter folder as an inference-mode encoder that returns its saved prompts."""
    directory = Path(directory)
    config_path = directory / PEFT_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"{directory}: no {PEFT_CONFIG}; not a PEFT adapter folder")
    raw = json.loads(config_path.read_text())
    if raw.get("peft_type") != "P_TUNING":
        raise ConfigError(f"{config_path}: peft_type is {raw.get('peft_type')!r}, expected 'P_TUNING'")
    config = PromptEncoderConfig.from_dict({**raw, "inference_mode": True})
    encoder = PromptEncoder(config)
    weights_path = directory / PEFT_WEIGHTS
    if not weights_path.is_file():
        raise ConfigError(f"{directory}: no {PEFT_WEIGHTS}")
    weights = load_file(str(weights_path))
    if "prompt_embeddings" not in weights:
        raise ConfigError(f"{weights_path}: no 'prompt_embeddings' tensor (found {sorted(weights)})")
    encoder.embedding.weight.data.copy_(weights["prompt_embeddings"])
    return encoder
