"""The prompt encoder matches PEFT's: config fields, attributes, state-dict names and outputs."""

from __future__ import annotations

import dataclasses
import warnings

import peft
import pytest
import torch

from repro.ptuning import PromptEncoder, PromptEncoderConfig, PromptEncoderReparameterizationType, paper_lstm_config

PEFT_FIELDS = [
    "task_type", "peft_type", "auto_mapping", "base_model_name_or_path", "revision", "inference_mode",
    "num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers",
    "modules_to_save", "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers",
    "encoder_dropout",
]


def test_seed_example_runs_and_gives_expected_shape():
    config = PromptEncoderConfig(peft_type="P_TUNING", task_type="SEQ_2_SEQ_LM", num_virtual_tokens=20,
        token_dim=768, num_transformer_submodules=1, num_attention_heads=12, num_layers=12,
        encoder_reparameterization_type="MLP", encoder_hidden_size=768)
    prompt_encoder = PromptEncoder(config)
    out = prompt_encoder(torch.arange(20).unsqueeze(0).expand(3, -1))
    assert out.shape == (3, 20, 768)


def test_every_peft_field_has_the_same_default():
    ours = {f.name: f for f in dataclasses.fields(PromptEncoderConfig)}
    theirs = {f.name: f for f in dataclasses.fields(peft.PromptEncoderConfig)}
    for name in PEFT_FIELDS:
        assert name in ours, name
        mine = ours[name].default if ours[name].default is not dataclasses.MISSING else ours[name].default_factory()
        other = theirs[name].default if theirs[name].default is not dataclasses.MISSING else theirs[name].default_factory()
        assert mine == other, (name, mine, other)
    assert PromptEncoderConfig.encoder_num_layers == 2 and PromptEncoderConfig.encoder_dropout == 0.0


def test_strings_and_enums_both_accepted_and_hidden_size_defaults_to_token_dim():
    a = PromptEncoderConfig(num_virtual_tokens=4, token_dim=16, encoder_reparameterization_type="lstm")
    b = PromptEncoderConfig(num_virtual_tokens=4, token_dim=16,
                            encoder_reparameterization_type=PromptEncoderReparameterizationType.LSTM)
    assert a.encoder_reparameterization_type is b.encoder_reparameterization_type is PromptEncoderReparameterizationType.LSTM
    assert a.encoder_hidden_size == 16 and a.peft_type == "P_TUNING"
    assert PromptEncoderConfig.from_dict(a.to_dict()) == a


def test_attributes():
    config = PromptEncoderConfig(num_virtual_tokens=5, token_dim=12, num_transformer_submodules=2,
                                 encoder_reparameterization_type="LSTM", encoder_hidden_size=6)
    enc = PromptEncoder(config)
    assert isinstance(enc.embedding, torch.nn.Embedding) and enc.embedding.weight.shape == (10, 12)
    assert isinstance(enc.lstm_head, torch.nn.LSTM) and isinstance(enc.mlp_head, torch.nn.Sequential)
    assert (enc.token_dim, enc.input_size, enc.output_size, enc.hidden_size) == (12, 12, 12, 6)
    assert enc.total_virtual_tokens == 10 and enc.encoder_type == PromptEncoderReparameterizationType.LSTM
    mlp = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=5, token_dim=12))
    assert not hasattr(mlp, "lstm_head") and len(mlp.mlp_head) == 5


def test_inference_mode_builds_no_heads():
    enc = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=3, token_dim=8, inference_mode=True,
                                            encoder_reparameterization_type="LSTM"))
    assert not hasattr(enc, "mlp_head") and not hasattr(enc, "lstm_head")
    assert torch.equal(enc(torch.arange(3).unsqueeze(0))[0], enc.embedding.weight)


def test_mlp_warns_that_encoder_num_layers_is_ignored():
    with pytest.warns(UserWarning, match="encoder_num_layers"):
        PromptEncoder(PromptEncoderConfig(num_virtual_tokens=3, token_dim=8, encoder_num_layers=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PromptEncoder(PromptEncoderConfig(num_virtual_tokens=3, token_dim=8, encoder_num_layers=5,
                                          encoder_reparameterization_type="LSTM"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_virtual_tokens=3, token_dim=8, encoder_reparameterization_type="GRU"), "GRU.*valid: MLP, LSTM"),
    (dict(token_dim=8), "num_virtual_tokens is required"),
    (dict(num_virtual_tokens=0, token_dim=8), "num_virtual_tokens must be a positive integer"),
    (dict(num_virtual_tokens=3), "token_dim is required"),
    (dict(num_virtual_tokens=3, token_dim=-2), "token_dim must be a positive integer"),
    (dict(num_virtual_tokens=3, token_dim=8, encoder_dropout=-0.1), "encoder_dropout"),
    (dict(num_virtual_tokens=3, token_dim=8, peft_type="LORA"), "P_TUNING"),
])
def test_bad_configs_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptEncoderConfig(**kwargs)


@pytest.mark.parametrize("kind", ["MLP", "LSTM"])
def test_same_state_dict_and_outputs_as_peft(kind):
    kwargs = dict(num_virtual_tokens=7, token_dim=24, encoder_hidden_size=10, encoder_reparameterization_type=kind,
                  num_transformer_submodules=1)
    torch.manual_seed(0)
    theirs = peft.PromptEncoder(peft.PromptEncoderConfig(**kwargs)).eval()
    ours = PromptEncoder(PromptEncoderConfig(**kwargs)).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    idx = torch.arange(7).unsqueeze(0).expand(2, -1)
    with torch.no_grad():
        diff = (ours(idx) - theirs(idx)).abs().max().item()
    assert diff < 1e-6
    # and back: a state dict of ours loads into peft's encoder
    theirs.load_state_dict(ours.state_dict())


def test_paper_lstm_sizes():
    enc = PromptEncoder(paper_lstm_config(9, 64))
    assert enc.lstm_head.hidden_size == 32 and enc.lstm_head.num_layers == 2 and enc.lstm_head.bidirectional
    assert enc.mlp_head[0].in_features == 64 and enc.mlp_head[0].out_features == 64  # Linear(h, h)
    assert enc.mlp_head[2].out_features == 64
    assert enc.prompts().shape == (9, 64)


# ---------------------------------------------------------------------- NONE: no reparameterisation (the ablation)
def _none(**kwargs) -> PromptEncoder:
    return PromptEncoder(PromptEncoderConfig(num_virtual_tokens=5, token_dim=12, encoder_reparameterization_type="none",
                                             **kwargs))


def test_none_encoder_returns_its_embedding_and_trains_it_directly():
    torch.manual_seed(0)
    enc = _none()
    assert enc.encoder_type is PromptEncoderReparameterizationType.NONE and not enc.config.inference_mode
    assert list(enc.state_dict()) == ["embedding.weight"]  # PEFT's inference-mode layout, nothing else
    assert not hasattr(enc, "mlp_head") and not hasattr(enc, "lstm_head")
    prompts = enc.prompts()
    assert torch.equal(prompts, enc.embedding.weight)
    assert torch.equal(enc(torch.tensor([[4, 0, 2]]))[0], enc.embedding.weight[[4, 0, 2]])
    target = torch.randn(5, 12)
    ((prompts - target) ** 2).sum().backward()
    torch.testing.assert_close(enc.embedding.weight.grad, 2 * (enc.embedding.weight.detach() - target))
    before = enc.embedding.weight.detach().clone()
    torch.optim.SGD(enc.parameters(), lr=0.1).step()
    assert not torch.equal(enc.embedding.weight, before)  # one step moves the prompts the LM reads
    assert torch.equal(enc.prompts(), enc.embedding.weight)


def test_none_starts_from_the_rows_lstm_and_mlp_encoders_feed_their_heads():
    """Same seed, same `nn.Embedding` default init: only the reparameterisation differs."""
    embeddings = {}
    for kind in ("NONE", "LSTM", "MLP"):
        torch.manual_seed(7)
        embeddings[kind] = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=5, token_dim=12,
                                                             encoder_reparameterization_type=kind)).embedding.weight
    assert torch.equal(embeddings["NONE"], embeddings["LSTM"]) and torch.equal(embeddings["NONE"], embeddings["MLP"])


def test_none_config_round_trips_and_warns_about_no_mlp_layers():
    config = PromptEncoderConfig(num_virtual_tokens=5, token_dim=12, encoder_reparameterization_type="NONE")
    assert config.to_dict()["encoder_reparameterization_type"] == "NONE"
    assert PromptEncoderConfig.from_dict(config.to_dict()) == config
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the MLP's "encoder_num_layers is ignored" warning is not NONE's
        _none(encoder_num_layers=5)


def test_unknown_type_lists_none_among_the_valid_ones():
    with pytest.raises(ValueError, match="'GRU'; valid: MLP, LSTM, NONE"):
        PromptEncoderConfig(num_virtual_tokens=3, token_dim=8, encoder_reparameterization_type="GRU")
