"""PEFT interop: a prefix-only encoder exported as a PEFT adapter loads in peft with the same logits."""

from __future__ import annotations

import json

import peft
import pytest
import torch

from repro.core.batch import collate, pad_id_of
from repro.errors import ConfigError
from repro.core.model import PromptedLM
from repro.ptuning import (PromptEncoder, PromptEncoderConfig, export_peft_adapter, import_peft_adapter,
                           load_encoder, save_encoder)
from repro.core.template import Template

TEXTS = ["The capital of France is", "Dante Alighieri was born in"]


def _all_position_logits(model: PromptedLM, batch) -> torch.Tensor:
    hidden = model.backbone.body()(inputs_embeds=model.inputs_embeds(batch),
                                   attention_mask=batch.attention_mask).last_hidden_state
    return model.backbone.head()(hidden)


@pytest.mark.parametrize("kind", ["MLP", "LSTM", "NONE"])
def test_exported_adapter_gives_the_same_logits_in_peft(load_tiny, tmp_path, kind):
    backbone = load_tiny("gpt2")
    template = Template.parse("[P*4] {text} [MASK]")
    torch.manual_seed(0)
    encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=4, token_dim=backbone.hidden_size,
                                                encoder_reparameterization_type=kind, encoder_dropout=0.0))
    ours = PromptedLM(backbone, encoder).eval()
    tok = backbone.tokenizer
    rendered = [template.render(tok, {"text": t}, causal=True) for t in TEXTS[:1]]
    batch = collate(rendered, pad_id_of(tok))
    with torch.no_grad():
        ours_logits = _all_position_logits(ours, batch)

    export_peft_adapter(encoder, tmp_path / "adapter", template=template, base_model_name_or_path="tiny-gpt2",
                        num_attention_heads=2, num_layers=2)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "P_TUNING" and config["num_virtual_tokens"] == 4
    assert config["encoder_reparameterization_type"] == kind and config["inference_mode"]  # NONE says so, too

    fresh = load_tiny("gpt2").model
    peft_model = peft.PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    text_ids = batch.input_ids[:, 4:]  # the real tokens after the 4 prompt positions
    assert text_ids[0].tolist() == tok(" " + TEXTS[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        peft_logits = peft_model(input_ids=text_ids, attention_mask=torch.ones_like(text_ids)).logits
    assert peft_logits.shape[1] == ours_logits.shape[1]
    torch.testing.assert_close(peft_logits[:, 4:], ours_logits[:, 4:], atol=1e-5, rtol=1e-5)

    # and back: the imported adapter reproduces the same prompts and logits in the suite
    imported = import_peft_adapter(tmp_path / "adapter")
    assert imported.config.inference_mode and imported.encoder_type.value == kind
    again = PromptedLM(load_tiny("gpt2"), imported).eval()
    with torch.no_grad():
        torch.testing.assert_close(_all_position_logits(again, batch), ours_logits, atol=1e-5, rtol=1e-5)


def test_export_refuses_templates_that_are_not_a_pure_prefix(tmp_path):
    encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=6, token_dim=8))
    with pytest.raises(ConfigError, match="PEFT can only prepend"):
        export_peft_adapter(encoder, tmp_path / "a", template=Template.parse("[P*3] {sub} [P*3] [MASK]"))


def test_own_checkpoint_keeps_encoder_weights_so_training_resumes(tmp_path):
    torch.manual_seed(0)
    encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=6, token_dim=8, encoder_reparameterization_type="LSTM"))
    save_encoder(encoder, tmp_path / "ckpt", template="[P*3] {sub} [P*3] [MASK]")
    restored, template = load_encoder(tmp_path / "ckpt")
    assert template == "[P*3] {sub} [P*3] [MASK]"
    assert set(restored.state_dict()) == set(encoder.state_dict())
    assert any(k.startswith("lstm_head.") for k in restored.state_dict())
    for key, value in encoder.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)
    assert all(p.requires_grad for p in restored.parameters())


def test_none_encoder_checkpoint_resumes_as_a_none_encoder(tmp_path):
    torch.manual_seed(0)
    encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=6, token_dim=8, encoder_reparameterization_type="NONE"))
    save_encoder(encoder, tmp_path / "ckpt")
    restored, _ = load_encoder(tmp_path / "ckpt")
    assert restored.encoder_type.value == "NONE" and not restored.config.inference_mode  # trained, not finished
    assert list(restored.state_dict()) == ["embedding.weight"]
    assert torch.equal(restored.prompts(), encoder.embedding.weight) and restored.embedding.weight.requires_grad
