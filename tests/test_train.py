"""The shared training loop: early stopping, best-state restore, and resume giving identical numbers."""

from __future__ import annotations

import pytest
import torch

from repro.core.batch import collate, pad_id_of
from repro.errors import ConfigError
from repro.core.model import PromptedLM, recomputes_activations
from repro.ptuning import PromptEncoder, paper_lstm_config
from repro.core.template import Template, word_token_ids
from repro.core.training import CHECKPOINT, TrainConfig, _backward, length_parts, set_seed, train
from repro.experiment.engine import item_length

FACTS = [("Paris", "France"), ("Rome", "Italy"), ("Moscow", "Russia"), ("Berlin", "Germany"),
         ("Madrid", "Spain"), ("Lisbon", "Portugal"), ("Vienna", "Austria"), ("Athens", "Greece"),
         ("Dublin", "Ireland"), ("Oslo", "Norway"), ("Warsaw", "Poland")]


class Interrupt(Exception):
    pass


def _setup(load_tiny, name="gpt2", dropout=0.1, facts=FACTS, **model_options):
    backbone = load_tiny(name)
    template = Template.parse((2, 2) if backbone.is_causal else (2, 2, 2), masked=not backbone.is_causal)
    set_seed(7)
    encoder = PromptEncoder(paper_lstm_config(template.num_prompt_tokens, backbone.hidden_size, encoder_dropout=dropout))
    model = PromptedLM(backbone, encoder, **model_options)
    tok = backbone.tokenizer
    items = [template.render(tok, {"sub": s}, causal=backbone.is_causal,
                             target_ids=word_token_ids(tok, o, space_before=True)[:1]) for s, o in facts]
    pad = pad_id_of(tok)

    def loss_fn(batch_items):
        return model.loss(collate(batch_items, pad))

    def evaluate():
        with torch.no_grad():
            return -float(model.loss(collate(items, pad)))

    return model, items, loss_fn, evaluate


CONFIG = dict(optimizer="adam", lr_encoder=3e-3, weight_decay=5e-4, schedule="exponential", gamma=0.9,
              batch_size=4, max_epochs=6, patience=20, seed=11)


def _cut_and_resumed(load_tiny, tmp_path, cut_at: int, **train_options):
    """The straight run, and the same run cut at the `cut_at`-th batch (checkpoints in `tmp_path`) then resumed in
    a fresh model, as a new process would: (straight outcome, its final weights, resumed outcome, resumed model)."""
    config = TrainConfig(**CONFIG)
    model, items, loss_fn, evaluate = _setup(load_tiny)
    straight = train(model, items, loss_fn, evaluate, config, quiet=True)
    straight_weights = {k: v.clone() for k, v in model.encoder.state_dict().items()}

    model, items, loss_fn, evaluate = _setup(load_tiny)
    calls = {"n": 0}

    def flaky(batch_items):
        calls["n"] += 1
        if calls["n"] == cut_at:
            raise Interrupt()
        return loss_fn(batch_items)

    with pytest.raises(Interrupt):
        train(model, items, flaky, evaluate, config, checkpoint_dir=tmp_path, quiet=True, **train_options)
    assert (tmp_path / CHECKPOINT).is_file()

    model, items, loss_fn, evaluate = _setup(load_tiny)
    resumed = train(model, items, loss_fn, evaluate, config, checkpoint_dir=tmp_path, quiet=True, **train_options)
    return straight, straight_weights, resumed, model


def _assert_same_run(straight, straight_weights, resumed, model) -> None:
    assert resumed.history == straight.history
    assert (resumed.best_score, resumed.best_step, resumed.steps) == (straight.best_score, straight.best_step, straight.steps)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, straight_weights[key]), key


def test_resume_after_interruption_gives_identical_results(load_tiny, tmp_path):
    # cut mid-epoch (3 steps per epoch), after two epoch checkpoints
    straight, weights, resumed, model = _cut_and_resumed(load_tiny, tmp_path, cut_at=8)
    assert resumed.resumed_from_step == 6
    _assert_same_run(straight, weights, resumed, model)


def test_timed_checkpoints_resume_mid_epoch_with_identical_results(load_tiny, tmp_path):
    """`checkpoint_every_s` also checkpoints between dev checks (here after every step): cut inside an epoch,
    the run resumes from the step before the cut, not from the epoch's start, and ends as the straight run."""
    # cut at the second step of epoch 2: its last dev check was step 3
    straight, weights, resumed, model = _cut_and_resumed(load_tiny, tmp_path, cut_at=5, checkpoint_every_s=0.0)
    assert resumed.resumed_from_step == 4
    _assert_same_run(straight, weights, resumed, model)


def test_early_stopping_and_best_state_restore(load_tiny):
    model, items, loss_fn, evaluate = _setup(load_tiny, dropout=0.0)
    scores = iter([1.0, 3.0, 2.0, 2.5, 0.0, 5.0])
    seen = []

    def scripted_eval():
        seen.append({k: v.clone() for k, v in model.encoder.state_dict().items()})
        return next(scores)

    outcome = train(model, items, loss_fn, scripted_eval, TrainConfig(**{**CONFIG, "patience": 3}), quiet=True)
    assert outcome.stopped_early and len(outcome.history) == 5
    assert (outcome.best_score, outcome.best_epoch, outcome.best_step) == (3.0, 2, 6)
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, seen[1][key])


def test_step_based_evaluation_and_linear_schedule(load_tiny):
    model, items, loss_fn, evaluate = _setup(load_tiny)
    config = TrainConfig(optimizer="adamw", lr_encoder=1e-3, schedule="linear", warmup_ratio=0.2, batch_size=2,
                         max_steps=10, eval_every_steps=4, max_grad_norm=1.0, seed=3)
    outcome = train(model, items, loss_fn, evaluate, config, quiet=True)
    assert [h["step"] for h in outcome.history] == [4, 8, 10] and outcome.steps == 10


def test_changed_settings_refuse_to_resume(load_tiny, tmp_path):
    model, items, loss_fn, evaluate = _setup(load_tiny)
    train(model, items, loss_fn, evaluate, TrainConfig(**{**CONFIG, "max_epochs": 1}), checkpoint_dir=tmp_path, quiet=True)
    with pytest.raises(ConfigError, match="other training settings"):
        train(model, items, loss_fn, evaluate, TrainConfig(**{**CONFIG, "max_epochs": 2, "lr_encoder": 1.0}),
              checkpoint_dir=tmp_path, quiet=True)


def test_bad_training_configs():
    with pytest.raises(ConfigError, match="valid: adam, adamw"):
        TrainConfig(optimizer="sgd", max_epochs=1)
    with pytest.raises(ConfigError, match="max_epochs or max_steps"):
        TrainConfig()


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_optimizer_matches_the_per_tensor_loop(optimizer):
    """build_optimizer picks torch's fused Adam kernel on CPU: the same updates as the default per-tensor loop
    (both decay groups, two learning rates), so results do not depend on which kernel ran."""
    from repro.core.training import build_optimizer

    torch.manual_seed(0)
    shapes = {"encoder.w": (6, 5), "lm.layer.weight": (5, 4), "lm.layer.bias": (4,), "lm.norm.weight": (4,)}
    fused = {n: torch.nn.Parameter(torch.randn(s)) for n, s in shapes.items()}
    plain = {n: torch.nn.Parameter(p.detach().clone()) for n, p in fused.items()}
    initial = {n: p.detach().clone() for n, p in fused.items()}
    config = TrainConfig(optimizer=optimizer, lr_encoder=1e-2, lr_backbone=1e-3, weight_decay=0.1, max_steps=1)

    def groups(params):
        return {"encoder": [params["encoder.w"]], "backbone": [p for n, p in params.items() if n.startswith("lm.")]}

    opt_fused = build_optimizer(groups(fused), fused, config)
    assert all(group.get("fused") for group in opt_fused.param_groups)
    cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    reference = build_optimizer(groups(plain), plain, config)
    opt_plain = cls([{k: v for k, v in g.items() if k != "fused"} for g in reference.param_groups], fused=False,
                    foreach=False)
    for _ in range(4):
        grads = {n: torch.randn(s) for n, s in shapes.items()}
        for params in (fused, plain):
            for n, p in params.items():
                p.grad = grads[n].clone()
        opt_fused.step()
        opt_plain.step()
    for n in shapes:
        assert torch.allclose(fused[n], plain[n], atol=1e-6), n
        assert not torch.allclose(fused[n], initial[n]), n  # the updates did something


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_recomputed_activations_train_a_fine_tuned_lm_to_the_same_numbers(load_tiny, name):
    """`--recompute-activations` (gradient checkpointing of a trained LM): each layer's forward runs again in the
    backward pass instead of keeping its activations, and training ends with the same history and weights
    (dropout included: the recomputation replays the layer's random draws)."""
    def fine_tune(recompute: bool):
        model, items, loss_fn, evaluate = _setup(load_tiny, name, train_backbone=True, recompute_activations=recompute)
        body = model.backbone.body()
        first_layer = (body.layers if hasattr(body, "layers") else body.h if hasattr(body, "h")
                       else body.encoder.layer)[0]
        calls = {"n": 0}  # forwards of a module inside the layer (the layer's own hooks stay outside the replay)
        next(first_layer.children()).register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
        config = TrainConfig(**{**CONFIG, "max_epochs": 2}, lr_backbone=1e-3)
        outcome = train(model, items, loss_fn, evaluate, config, quiet=True)
        return outcome, {k: v.clone() for k, v in model.state_dict().items()}, calls["n"]

    plain, plain_weights, plain_calls = fine_tune(False)
    recomputed, weights, recomputed_calls = fine_tune(True)
    assert recomputed.history == plain.history and recomputed.best_step == plain.best_step
    for key, value in weights.items():
        assert torch.equal(value, plain_weights[key]), key
    steps = recomputed.steps
    assert recomputed_calls == plain_calls + steps  # one more forward of the layer per training step
    # the switch lives on the backbone's model, which outlives a PromptedLM: the next one built without it clears it
    backbone = load_tiny(name)
    PromptedLM(backbone, train_backbone=True, recompute_activations=True)
    assert recomputes_activations(backbone.model)
    PromptedLM(backbone, train_backbone=True)
    assert not recomputes_activations(backbone.model)


def test_length_parts_keep_a_batch_whole_unless_cut():
    batch = [5, 30, 6, 28]
    same = lambda w: w  # noqa: E731  (an item here is its own length)
    assert length_parts(batch, same, None)[0] is batch and length_parts(batch, None, 60)[0] is batch
    assert length_parts(batch, same, 1000) == [batch] and length_parts(batch, same, 1000)[0] is batch
    assert sorted(map(sorted, length_parts(batch, same, 60))) == [[5, 6], [28, 30]]  # 2 x 6 and 2 x 30 tokens


def test_batches_cut_by_length_train_to_the_one_pass_numbers(load_tiny):
    """`max_batch_tokens`: each batch in passes of similar length, each pass's mean loss weighted by its share;
    in float32 the gradients, history and weights are the one-pass run's up to rounding."""
    facts = [(" ".join([s] * (1 + k % 5)), o) for k, (s, o) in enumerate(FACTS)]  # 1 to 5 copies: widths differ

    def fine_tune(max_tokens):
        model, items, loss_fn, evaluate = _setup(load_tiny, "llama", dropout=0.0, facts=facts, train_backbone=True)
        passes = []
        counted = lambda batch: passes.append(len(batch)) or loss_fn(batch)  # noqa: E731
        config = TrainConfig(**{**CONFIG, "max_epochs": 2}, lr_backbone=1e-3, max_batch_tokens=max_tokens)
        outcome = train(model, items, counted, evaluate, config, quiet=True, item_length=item_length)
        return outcome, {k: v.clone() for k, v in model.state_dict().items()}, passes

    plain, plain_weights, plain_passes = fine_tune(None)
    cut, weights, passes = fine_tune(40)
    assert len(plain_passes) == plain.steps and len(passes) > len(plain_passes)  # batches were cut
    assert sum(passes) == sum(plain_passes)  # every item once per step either way
    assert cut.best_step == plain.best_step
    logged = lambda outcome: [v for h in outcome.history for v in (h["dev"], h["loss"])]  # noqa: E731
    assert logged(cut) == pytest.approx(logged(plain), abs=1e-5)
    # Adam divides each step by the gradient's running scale, so a near-zero gradient's rounding moves a weight
    # by a visible share of the learning rate (3e-3): 8e-5 in the LSTM here, the gradients themselves agree
    # to rounding (below)
    for key, value in weights.items():
        assert torch.allclose(value, plain_weights[key], atol=2e-4), key

    model, items, loss_fn, _ = _setup(load_tiny, "llama", dropout=0.0, facts=facts, train_backbone=True)
    params = [p for p in model.parameters() if p.requires_grad]

    def gradients(parts):
        model.zero_grad(set_to_none=True)
        loss = _backward(items, loss_fn, len, params, parts)
        return loss, [p.grad.clone() for p in params]

    loss, grads = gradients(lambda batch: [batch])
    cut_loss, cut_grads = gradients(lambda batch: length_parts(batch, item_length, 40))
    assert len(length_parts(items, item_length, 40)) > 2 and cut_loss == pytest.approx(loss, rel=1e-6)
    for g, c in zip(grads, cut_grads):  # float32 sums in another order: equal up to rounding, tensor by tensor
        assert float((c - g).norm()) <= 1e-5 * float(g.norm()) + 1e-9


def test_the_length_limit_enters_the_fingerprint_only_when_set():
    plain = TrainConfig(max_steps=4)
    assert "max_batch_tokens" not in plain.to_dict()  # so the committed runs' fingerprints stay as they were
    cut = TrainConfig(max_steps=4, max_batch_tokens=512)
    assert cut.to_dict()["max_batch_tokens"] == 512 and cut.fingerprint() != plain.fingerprint()
    with pytest.raises(ConfigError, match="max_batch_tokens must be positive"):
        TrainConfig(max_steps=4, max_batch_tokens=0)
