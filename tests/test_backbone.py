"""Backbone loading: masked vs causal detection, local directories, the embedded SmolLM2 default."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig, RobertaConfig

from repro.core.backbone import EMBEDDED, cache_root, detect_causal, embedded_checkpoint, load_backbone
from repro.core.batch import collate, pad_id_of
from repro.errors import ConfigError
from repro.core.model import PromptedLM
from repro.core.template import Template
from tiny import CAUSAL, MASKED


def test_detect_causal_from_config_not_from_the_name():
    assert detect_causal(BertConfig(architectures=["BertForMaskedLM"])) is False
    assert detect_causal(BertConfig()) is False  # BERT is in both mappings: masked unless is_decoder
    assert detect_causal(BertConfig(is_decoder=True)) is True
    assert detect_causal(RobertaConfig(architectures=["RobertaForMaskedLM"])) is False
    assert detect_causal(GPT2Config()) is True
    assert detect_causal(LlamaConfig()) is True


@pytest.mark.parametrize("name", MASKED + CAUSAL)
def test_local_directories_load_with_their_kind_and_short_name(tiny_dirs, name):
    backbone = load_backbone(str(tiny_dirs[name]))
    assert backbone.is_causal == (name in CAUSAL)
    assert backbone.name == name
    assert backbone.hidden_size == backbone.model.get_input_embeddings().embedding_dim


def test_unknown_backbone_and_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="tried an embedded name: not one of .*smollm2-135m; a local directory"):
        load_backbone("no-such-org/no-such-model")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        load_backbone(str(tmp_path / "weights.bin"))
    with pytest.raises(ConfigError, match="valid: float32, bfloat16"):
        load_backbone("smollm2-135m", dtype="float16")


@pytest.mark.slow
def test_embedded_smollm2_predicts_paris_and_is_cached(tmp_path_factory):
    backbone = load_backbone("smollm2-135m")
    assert backbone.is_causal and backbone.name == "smollm2-135m"
    assert "SmolLM2-135M" in EMBEDDED["smollm2-135m"].description
    tok = backbone.tokenizer
    template = Template.parse("{text} [MASK]")
    batch = collate([template.render(tok, {"text": "The capital of France is"}, causal=True)], pad_id_of(tok))
    with torch.no_grad():
        logits = PromptedLM(backbone).target_logits(batch)
    assert tok.decode(int(logits[0, 0].argmax())) == " Paris"
    # converted once: later loads read the cached safetensors checkpoint, without touching the GGUF again
    started = time.perf_counter()
    cached = embedded_checkpoint(EMBEDDED["smollm2-135m"], cache_root())
    assert time.perf_counter() - started < 5
    assert (cached / "model.safetensors").is_file() and (cached / "tokenizer.json").is_file()
    assert "quantization_config" not in (cached / "config.json").read_text()
