"""The prompted LM: injection at the prompt positions, scoring at the target positions, what trains."""

from __future__ import annotations

import pytest
import torch

from repro.core.batch import collate, pad_id_of
from repro.core.model import PromptedLM
from repro.ptuning import PromptEncoder, PromptEncoderConfig, paper_lstm_config
from repro.core.template import Template, word_token_ids
from tiny import CAUSAL, MASKED

SUBJECTS = ["Paris", "Dante Alighieri", "Moscow", "Rome"]
OBJECTS = ["France", "Italy", "Russia", "Italy"]


def _template(backbone, prompts=True):
    if not prompts:
        return Template.parse("{sub} is located in [MASK] .")
    return Template.parse((3, 3) if backbone.is_causal else (3, 3, 3), masked=not backbone.is_causal)


def _batch(backbone, template, objects=OBJECTS):
    tok = backbone.tokenizer
    rendered = [
        template.render(tok, {"sub": s}, causal=backbone.is_causal,
                        target_ids=word_token_ids(tok, o, space_before=template.target_space_before)[:1])
        for s, o in zip(SUBJECTS, objects)
    ]
    return collate(rendered, pad_id_of(tok))


def _encoder(backbone, template, kind="MLP"):
    torch.manual_seed(1)
    return PromptEncoder(PromptEncoderConfig(num_virtual_tokens=template.num_prompt_tokens,
                                             token_dim=backbone.hidden_size, encoder_reparameterization_type=kind))


@pytest.mark.parametrize("name", MASKED + CAUSAL)
def test_encoder_outputs_written_at_prompt_positions_only(load_tiny, name):
    backbone = load_tiny(name)
    template = _template(backbone)
    encoder = _encoder(backbone, template)
    model = PromptedLM(backbone, encoder)
    batch = _batch(backbone, template)
    with torch.no_grad():
        embeds = model.inputs_embeds(batch)
        plain = backbone.input_embeddings()(batch.input_ids)
        prompts = encoder.prompts()
    for row in range(len(batch)):
        for pos in range(batch.input_ids.shape[1]):
            j = int(batch.prompt_index[row, pos])
            expected = prompts[j] if j >= 0 else plain[row, pos]
            assert torch.equal(embeds[row, pos], expected)
    assert int((batch.prompt_index >= 0).sum()) == len(batch) * template.num_prompt_tokens


@pytest.mark.parametrize("name", MASKED + CAUSAL)
def test_scores_at_target_positions_match_a_full_forward(load_tiny, name):
    """Without prompt tokens the prompted LM must reproduce the plain model's logits where it reads them."""
    backbone = load_tiny(name)
    template = _template(backbone, prompts=False)
    model = PromptedLM(backbone)
    batch = _batch(backbone, template)
    candidates = torch.tensor([5, 17, 42, 99, 100])
    with torch.no_grad():
        kwargs = {"token_type_ids": batch.token_type_ids} if backbone.uses_token_types else {}
        full = backbone.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits
        rows = torch.arange(len(batch)).unsqueeze(1)
        expected = full[rows, batch.target_positions]
        ours = model.target_logits(batch)
        restricted = model.candidate_logits(batch, candidates)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(restricted, expected[..., candidates], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_frozen_backbone_only_encoder_gets_gradients(load_tiny, name):
    backbone = load_tiny(name)
    template = _template(backbone)
    encoder = _encoder(backbone, template, kind="LSTM")
    model = PromptedLM(backbone, encoder, train_backbone=False)
    model.train()
    model.loss(_batch(backbone, template)).backward()
    assert all(p.grad is None and not p.requires_grad for p in backbone.model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    groups = model.trainable_parameters()
    assert groups["backbone"] == [] and len(groups["encoder"]) == len(list(encoder.parameters()))
    assert not backbone.model.training  # a frozen LM keeps dropout off


def test_joint_training_flag_trains_the_backbone_too(load_tiny):
    backbone = load_tiny("gpt2")
    template = _template(backbone)
    model = PromptedLM(backbone, _encoder(backbone, template), train_backbone=True)
    model.train()
    model.loss(_batch(backbone, template)).backward()
    assert backbone.model.training
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.model.parameters())
    assert len(model.trainable_parameters()["backbone"]) == len(list(backbone.model.parameters()))


@pytest.mark.parametrize("name, kind", [("bert", "LSTM"), ("gpt2", "MLP"), ("albert", "MLP"), ("llama", "LSTM")])
def test_a_few_ptuning_steps_lower_the_loss_on_a_fixed_toy_task(load_tiny, name, kind):
    backbone = load_tiny(name)
    template = _template(backbone)
    torch.manual_seed(0)
    config = (paper_lstm_config(template.num_prompt_tokens, backbone.hidden_size) if kind == "LSTM"
              else PromptEncoderConfig(num_virtual_tokens=template.num_prompt_tokens, token_dim=backbone.hidden_size))
    model = PromptedLM(backbone, PromptEncoder(config))
    batch = _batch(backbone, template)
    optimizer = torch.optim.Adam(model.trainable_parameters()["encoder"], lr=1e-2)
    model.train()
    with torch.no_grad():
        before = model.loss(batch).item()
    for _ in range(15):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    with torch.no_grad():
        after = model.loss(batch).item()
    assert after < before - 0.05, (before, after)


def test_bfloat16_frozen_backbone_scores_close_to_float32(load_tiny):
    template = Template.parse("{sub} is located in [MASK] .")
    b32, b16 = load_tiny("llama"), load_tiny("llama")
    batch = _batch(b32, template)
    with torch.no_grad():
        ref = PromptedLM(b32).target_logits(batch)
        low = PromptedLM(b16, dtype="bfloat16").target_logits(batch)
    assert b16.model.dtype == torch.bfloat16 and low.dtype == torch.float32
    assert (ref - low).abs().max() < 0.05 * ref.abs().max() + 0.05


def _fused_adam_step(params, loss) -> None:
    """One step of the optimizer the training loop builds (fused AdamW), which leaves `_version` unchanged."""
    optimizer = torch.optim.AdamW(params, lr=0.5, fused=True)
    loss.backward()
    optimizer.step()


def test_a_trained_head_scores_candidates_with_its_current_weights(load_tiny):
    """Dev checks during training read the candidates' logits through a sliced head: after an optimizer step
    they must equal the full head's logits of the updated model, not those of the first check."""
    backbone = load_tiny("gpt2")
    template = _template(backbone)
    model = PromptedLM(backbone, _encoder(backbone, template), train_backbone=True)
    batch = _batch(backbone, template)
    candidates = torch.tensor([5, 17, 42, 99, 100])
    model.eval()
    with torch.no_grad():
        before = model.candidate_logits(batch, candidates)
    model.train()
    _fused_adam_step([p for ps in model.trainable_parameters().values() for p in ps], model.loss(batch))
    model.eval()
    with torch.no_grad():
        after, full = model.candidate_logits(batch, candidates), model.target_logits(batch)[..., candidates]
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, full, atol=1e-5, rtol=1e-5)


def test_an_encoder_stack_gives_fresh_prompts_after_a_training_step(load_tiny):
    """The joint stack keeps its prompt table through an evaluation pass only: a step between two passes (here
    on the encoders directly, not through the stack) must show in the next pass's table."""
    from repro.core.encoder_stack import EncoderStack

    backbone = load_tiny("gpt2")
    template = _template(backbone)
    stack = EncoderStack([_encoder(backbone, template), _encoder(backbone, template)])
    stack.eval()
    with torch.no_grad():
        first = stack.prompts().clone()
    _fused_adam_step(list(stack.parameters()), sum(e.prompts().sum() for e in stack.encoders))
    stack.train()
    stack.eval()
    with torch.no_grad():
        second = stack.prompts()
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, torch.cat([e.prompts() for e in stack.encoders]).detach())
