"""Fidelity ledger, item by item: each behaviour under each choice, with the expectation written from the cited
reference (THUDM/P-tuning `LAMA/`, `PT-Fewshot/`; timoschick/pet), on tiny backbones and real data lines."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro import fidelity as fid
from repro.core.training import TrainConfig, is_improvement, train
from repro.errors import ConfigError
from repro.experiment.engine import new_encoder
from repro.experiment.lama import PRESETS as LAMA_PRESETS, LamaConfig, method_template, ptuning_template, run_lama
from repro.experiment.superglue import RunPlan, search_variants
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import get_method
from repro.scorers.base import ScorerContext, make_scorer
from repro.tasks import lama as lama_data
from repro.tasks.lama import Lama
from repro.tasks.registry import get_task

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the levels
def test_levels_resolve_to_the_ledger_sides_and_items_override_one_by_one():
    suite, paper, authors = (fid.resolve(level, "superglue") for level in fid.LEVELS)
    assert suite == fid.FidelityChoices()  # the suite's default is the behaviour before the switch existed
    # PT-Fewshot keeps the suite's patience count and last batch, and trains the LM (in fp32: no frozen LM to halve)
    assert {k for k, v in authors.to_dict().items() if v != suite.to_dict()[k]} == set(fid.VALUES) - {
        "tie_patience", "drop_last", "frozen_lm_dtype"}
    assert (authors.decay_scope, authors.eval_ends, authors.frozen_lm_dtype) == ("pet", "fewshot", "preset")
    # the paper's text is explicit on these, the authors' code decides the rest
    assert (paper.label_shift, paper.lama_query, paper.lama_mask_order, paper.encoder_lr) == (
        "aligned", "suite", "paper", "paper")
    assert paper.tie_break == "last" and paper.selection == "authors" and paper.seed_rule == "once"
    assert (paper.decay_scope, paper.eval_ends, paper.pattern_text) == ("pet", "fewshot", "authors")
    lama_authors = fid.resolve("authors", "lama")
    assert (lama_authors.tie_patience, lama_authors.drop_last) == ("reset", "drop")  # LAMA/cli.py
    # LAMA/p_tuning/models.py halves a frozen LM; LAMA/cli.py decays every parameter, checks at epoch starts
    assert (lama_authors.frozen_lm_dtype, lama_authors.decay_scope, lama_authors.eval_ends) == ("float16", "all", "lama")
    assert fid.resolve("paper", "lama") == replace(lama_authors, label_shift="aligned", lama_query="suite",
                                                   lama_mask_order="paper", encoder_lr="paper")
    for item, values in fid.VALUES.items():
        for value in values:
            assert getattr(fid.resolve("suite", "lama", {item: value}), item) == value
    with pytest.raises(ConfigError, match="valid: first, last"):
        fid.resolve("suite", "lama", {"tie_break": "middle"})
    with pytest.raises(ConfigError, match="unknown fidelity item"):
        fid.resolve("suite", "lama", {"nope": "x"})
    with pytest.raises(ConfigError, match="valid: suite, paper, authors"):
        LamaConfig(method="mp", fidelity="exact")


def test_the_preset_decides_the_level_when_none_is_named_and_results_record_the_choices():
    assert LamaConfig(method="mp").fidelity == "suite"
    assert LamaConfig(method="mp", preset="paper").fidelity == "paper"
    cfg = SuperGLUEConfig(task="cb", fidelity="authors", fidelity_items={"tie_break": "first"})
    data = cfg.to_dict()
    assert data["fidelity_choices"]["tie_break"] == "first" and data["fidelity_choices"]["selection"] == "authors"
    assert SuperGLUEConfig.from_dict(json.loads(json.dumps(data))).choices == cfg.choices
    assert cfg.fingerprint() != SuperGLUEConfig(task="cb", fidelity="authors").fingerprint()


# ---------------------------------------------------------------------------------- item 1: tie-break
class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def trainable_parameters(self):
        return {"encoder": [self.w]}


def _run_scores(scores, **config):
    """Train a one-parameter toy whose dev checks return `scores` in order; (best_step, stopped at step)."""
    model, it = _Toy(), iter(scores)
    cfg = TrainConfig(optimizer="adam", lr_encoder=0.1, batch_size=1, max_steps=len(scores), eval_every_steps=1,
                      **config)
    outcome = train(model, [0] * len(scores), lambda batch: (model.w - 1).pow(2).sum(), lambda: next(it), cfg,
                    quiet=True)
    return outcome.best_step, outcome.steps


def test_tied_dev_checks_keep_the_first_or_the_last():
    # LAMA/cli.py Trainer.train and PT-Fewshot/pet/wrapper.py keep a check when dev >= best: the later of a tie
    assert _run_scores([0.5, 0.5, 0.25]) == (1, 3)
    assert _run_scores([0.5, 0.5, 0.25], tie_break="last") == (2, 3)
    assert is_improvement(0.5, 0.5, "last") and not is_improvement(0.5, 0.5, "first")
    assert is_improvement(0.1, None, "first")


def test_a_kept_tie_counts_against_patience_in_pt_fewshot_and_resets_it_in_lama():
    scores = [0.5, 0.5, 0.5, 0.5, 0.5]
    # PT-Fewshot: early_stop_epoch += 1 on a saved tie; patience 2 stops at the third check
    assert _run_scores(scores, tie_break="last", patience=2) == (3, 3)
    # LAMA/cli.py: early_stop = 0 whenever dev >= best; never stops on ties
    assert _run_scores(scores, tie_break="last", tie_patience="reset", patience=2) == (5, 5)
    assert _run_scores(scores, patience=2) == (1, 3)


def test_authors_selection_needs_both_accuracy_and_f1():
    # PT-Fewshot/pet/wrapper.py: cb/record/multirc keep a check when acc >= best acc AND f1 >= best f1
    assert is_improvement((60.0, 50.0), (60.0, 50.0), "last")
    assert not is_improvement((70.0, 40.0), (60.0, 50.0), "last")
    assert not is_improvement((70.0, 40.0), (60.0, 50.0), "first")
    assert is_improvement((60.0, 51.0), (60.0, 50.0), "first") and not is_improvement((60.0, 50.0), (60.0, 50.0), "first")
    assert _run_scores([(60.0, 50.0), (70.0, 40.0), (60.0, 50.0)], tie_break="last") == (3, 3)


def test_multirc_selection_score_mean_of_em_f1a_or_option_accuracy_and_f1a(shared_data):
    task = get_task("multirc")
    examples = task.read(shared_data / "fewglue/MultiRC/dev32.jsonl")[:12]
    golds = task.golds(examples)
    predictions = [1] * len(examples)
    scores = task.score(examples, predictions)
    assert fid.selection_value(task, examples, predictions, scores, "mean") == pytest.approx(
        (scores["em"] + scores["f1a"]) / 2)
    option_acc = 100.0 * sum(p == g for p, g in zip(predictions, golds)) / len(golds)
    assert fid.selection_value(task, examples, predictions, scores, "authors") == pytest.approx(
        (option_acc, scores["f1a"]))
    rte = get_task("rte")  # accuracy alone for the other tasks
    assert fid.selection_value(rte, [], [], {"acc": 40.0}, "authors") == 40.0


# ------------------------------------------------------------------------------- items 2, 3: GPT LAMA
def _lama(method, **kwargs):
    return LamaConfig(method=method, relations=["P36"], train=replace(LAMA_PRESETS["cpu"].train, max_steps=2),
                      dtype="float32", **kwargs)


def test_gpt_manual_query_with_and_without_the_trailing_space_token(load_tiny, shared_data):
    gpt2 = load_tiny("gpt2")
    tok = gpt2.tokenizer
    relation = lama_data.get_relations(shared_data, ["P36"])[0]  # "The capital of [X] is [Y] ."
    mp = get_method("mp", "lama")
    suite = method_template(mp, relation, gpt2, _lama("mp")).render(tok, {"sub": "France"}, causal=True,
                                                                    target_ids=[7])
    authors = method_template(mp, relation, gpt2, _lama("mp", fidelity="authors")).render(
        tok, {"sub": "France"}, causal=True, target_ids=[7])
    # LAMA/p_tuning/modeling.py get_query: tokenizer(' ' + prompt with [X] filled, cut where [Y] starts)
    query = " " + relation.template.replace("[X]", "France").split("[Y]")[0]
    assert query.endswith("is ")
    assert authors.input_ids == tok(query, add_special_tokens=False)["input_ids"]
    assert authors.input_ids[-1] == tok.convert_tokens_to_ids("Ġ")  # the lone space token
    assert authors.target_positions == [len(authors.input_ids) - 1]  # hit@1 reads after it
    assert suite.input_ids == tok("The capital of France is", add_special_tokens=False)["input_ids"]
    assert suite.input_ids[-1] != tok.convert_tokens_to_ids("Ġ")
    # BERT: [CLS] prompt with [MASK] [SEP] under either choice (BERT's tokenizer drops the leading space)
    bert = load_tiny("bert")
    btok = bert.tokenizer
    expected = btok(" " + relation.template.replace("[X]", "France").replace("[Y]", btok.mask_token))["input_ids"]
    for level in ("suite", "authors"):
        r = method_template(mp, relation, bert, _lama("mp", fidelity=level)).render(btok, {"sub": "France"},
                                                                                   causal=False, target_ids=[7])
        assert r.input_ids == expected and r.input_ids[r.target_positions[0]] == btok.mask_token_id


def test_lama_ptuning_queries_in_both_mask_orders(load_tiny):
    bert, gpt2 = load_tiny("bert"), load_tiny("gpt2")
    btok, gtok = bert.tokenizer, gpt2.tokenizer
    sub = btok("Paris", add_special_tokens=False)["input_ids"]
    for choice, order in (("paper", "sub-first"), ("code", "mask-first")):
        config = _lama("ptuning", fidelity_items={"lama_mask_order": choice})
        r = ptuning_template(bert, config).render(btok, {"sub": "Paris"}, causal=False, target_ids=[7])
        p = r.input_ids[1]  # the placeholder id at prompt positions
        middle = sub + [p] * 3 + [btok.mask_token_id] if order == "sub-first" else [btok.mask_token_id] + [p] * 3 + sub
        # LAMA/p_tuning/modeling.py get_query (code): [CLS] P*3 [MASK] P*3 sub P*3 [SEP]
        assert r.input_ids == [btok.cls_token_id] + [p] * 3 + middle + [p] * 3 + [btok.sep_token_id]
        assert r.input_ids[r.target_positions[0]] == btok.mask_token_id
    assert LamaConfig(method="ptuning", fidelity="authors").mask_order == "code"
    assert LamaConfig(method="ptuning", mask_order="code").choices.lama_mask_order == "code"
    # GPT: P*3 tokens(' ' + sub) P*3, nothing after; the object is read at the last position
    r = ptuning_template(gpt2, _lama("ptuning")).render(gtok, {"sub": "Paris"}, causal=True, target_ids=[7])
    sub_ids = gtok(" Paris", add_special_tokens=False)["input_ids"]
    p = r.input_ids[0]
    assert r.input_ids == [p] * 3 + sub_ids + [p] * 3 and r.target_positions == [len(r.input_ids) - 1]


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_label_shift_trains_one_position_before_the_one_p_at_1_reads(load_tiny, shared_data, name):
    backbone = load_tiny(name)
    relation = lama_data.get_relations(shared_data, ["P36"])[0]
    vocab = lama_data.allowed_vocab(shared_data, "29k", backbone.tokenizer, space_before=True)
    facts, _ = lama_data.filter_facts(lama_data.load_facts(shared_data, relation, "test"), vocab)
    examples = Lama.facts_as_examples(facts[:3], "test")
    from repro.core.model import PromptedLM

    config = _lama("ptuning")
    template = ptuning_template(backbone, config)
    positions = {}
    for shift in ("aligned", "authors"):
        ctx = ScorerContext(Lama(relation, vocab), get_method("ptuning", "lama"),
                            PromptedLM(backbone, new_encoder(template.num_prompt_tokens, backbone, config)),
                            template, "ptuning", None, 8, quiet=True, options={"label_shift": shift})
        scorer = make_scorer(ctx)
        positions[shift] = ([r.target_positions for r in scorer.train_items(examples)],
                            [scorer.render(ex).target_positions for ex in examples])
    read = positions["aligned"][1]
    assert positions["authors"][1] == read  # prediction reads the same place under both
    assert positions["aligned"][0] == read
    if name == "gpt2":  # modeling.py gpt_out: label on the last token, GPT-2 shifts it: trained one earlier
        assert positions["authors"][0] == [[p - 1 for p in ps] for ps in read]
        assert all(ps == [len(ex_ids) - 1] for ps, ex_ids in zip(read, [
            ctx.render(ex, target_ids=[0]).input_ids for ex in examples]))
    else:  # bert_out: the label sits at the [MASK]; no shift
        assert positions["authors"][0] == read


# ------------------------------------------------------------------------------------ items 4, 5: lrs
@pytest.mark.parametrize("task, scripts_lr", [("cb", 1e-5), ("wic", 1e-5), ("copa", 1e-5), ("rte", 1e-4),
                                              ("boolq", 1e-4), ("multirc", 1e-4), ("wsc", 1e-4)])
def test_encoder_learning_rate_per_task(task, scripts_lr):
    # PT-Fewshot/scripts/<task>_pt_few_shot.sh: cb, wic, copa pass no --learning_rate (cli.py default 1e-5)
    assert SuperGLUEConfig(task=task, preset="paper", fidelity="authors").train.lr_encoder == pytest.approx(scripts_lr)
    assert SuperGLUEConfig(task=task, preset="paper", fidelity="paper").train.lr_encoder == pytest.approx(1e-4)
    assert SuperGLUEConfig(task=task, preset="paper", fidelity="suite").train.lr_encoder == pytest.approx(1e-4)
    assert SuperGLUEConfig(task=task, preset="paper", fidelity="authors", setting="supervised").train.lr_encoder == \
        pytest.approx(1e-4)


@pytest.mark.parametrize("method", ["ft", "mp+ft"])
def test_lama_fine_tuning_learning_rate_and_last_batch(method):
    # LAMA/cli.py Trainer.train: the LM's group at 5e-6; DataLoader(train, batch_size=8, drop_last=True)
    authors = LamaConfig(method=method, preset="paper", fidelity="authors").train
    assert authors.lr_backbone == pytest.approx(5e-6) and authors.drop_last
    assert LamaConfig(method=method, preset="paper", fidelity="paper").train.lr_backbone == pytest.approx(5e-6)
    suite = LamaConfig(method=method, preset="paper", fidelity="suite").train
    assert suite.lr_backbone == pytest.approx(1e-5) and not suite.drop_last


def test_drop_last_drops_the_incomplete_batch():
    for drop, steps in ((False, 3), (True, 2)):
        model = _Toy()
        cfg = TrainConfig(batch_size=4, max_epochs=1, drop_last=drop)
        seen = []
        outcome = train(model, list(range(10)), lambda b: (seen.append(len(b)), (model.w - 1).pow(2).sum())[1],
                        lambda: 0.0, cfg, quiet=True)
        assert outcome.steps == steps and seen == [4, 4, 2][:steps]


# -------------------------------------------------------------------------------- item 6: encoder shape
def test_fewshot_encoder_mlp_width(load_tiny):
    backbone = load_tiny("albert")
    d = backbone.hidden_size
    shapes = {}
    for choice in ("double", "single"):
        config = SuperGLUEConfig(task="rte", fidelity_items={"encoder_mlp": choice})
        encoder = new_encoder(1, backbone, config)
        shapes[choice] = [tuple(m.weight.shape) for m in encoder.mlp_head if hasattr(m, "weight")]
        assert encoder.lstm_head.hidden_size == d  # LSTM of the hidden size per direction under both
    # PT-Fewshot/pet/wrapper.py ContinuousPrompt: Linear(2h, h) ReLU Linear(h, h); PEFT: Linear(2h, 2h), Linear(2h, d)
    assert shapes["single"] == [(d, 2 * d), (d, d)]
    assert shapes["double"] == [(2 * d, 2 * d), (d, 2 * d)]
    # LAMA/p_tuning/prompt_encoder.py: LSTM h/2 per direction, Linear(h, h) ReLU Linear(h, h) under either choice
    for choice in ("double", "single"):
        config = LamaConfig(method="ptuning", encoder="lstm", fidelity_items={"encoder_mlp": choice})
        enc = new_encoder(3, backbone, config)
        assert [tuple(m.weight.shape) for m in enc.mlp_head if hasattr(m, "weight")] == [(d, d), (d, d)]


# ------------------------------------------------------------------------------ item 7: pattern search
def test_supervised_search_over_lengths_or_the_authors_positions():
    for task, n in (("rte", 3), ("cb", 5), ("copa", 4), ("wsc", 4), ("boolq", 3), ("multirc", 2), ("wic", 3)):
        t = get_task(task)
        plans = {c: RunPlan(SuperGLUEConfig(task=task, setting="supervised", fidelity_items={"pattern_search": c}),
                            t, [t], get_method("ptuning", "superglue"), None, [42]) for c in ("length", "positions")}
        assert search_variants(plans["length"]) == ("paper", "p2", "p4")
        assert search_variants(plans["positions"]) == tuple(f"s{i}" for i in range(1, n + 1))
        for name in t.searched_patterns:
            assert t.template("ptuning", name).num_prompt_tokens >= 1
        assert t.default_variant("ptuning", causal=False) == "paper"


# ---------------------------------------------------------------------------------------- item 8: seeds
def test_seed_sequence_per_run_or_once(shared_data, tmp_path, load_tiny):
    from test_superglue_engine import run, tiny_config, whole_words

    def seeds(rule, chosen, runs):  # a fresh backbone each time: P-tuning trains the LM
        config = tiny_config("cb", seeds=chosen, fidelity_items={"seed_rule": rule})
        return run(config, shared_data, tmp_path, whole_words(load_tiny("bert")), runs=runs)["cb"]["training"]

    def history(runs, seed):  # the seed's dev checks and training losses
        path = next((tmp_path / runs).rglob(f"seed{seed}.json"))
        return json.dumps(json.loads(path.read_text())["training"]["history"])

    seeds("per_run", [42, 43], "a")
    seeds("per_run", [43], "b")
    seeds("once", [42, 43], "c")
    seeds("once", [42, 43], "d")
    seeds("once", [42], "e")
    both, alone, once, once_again, first_only = "a", "b", "c", "d", "e"
    assert history(both, 43) == history(alone, 43)  # per run: seed 43 is seed 43 whatever ran before
    assert history(once, 42) == history(first_only, 42)  # the first repetition starts from set_seed(42)
    assert history(once, 43) == history(once_again, 43)  # the stream is reproducible
    assert list((tmp_path / "c").rglob("seed42.rng.pt"))
    # once: the second repetition continues the stream the first left (PT-Fewshot/pet/modeling.py train_pet),
    # so it is neither seed 43's run nor a repeat of seed 42's
    assert history(once, 43) != history(both, 43)
    assert history(once, 43) != history(once, 42)


def test_config_seeds_and_runs_record_the_rule():
    assert SuperGLUEConfig(task="cb", fidelity="authors").train.reseed is False
    assert SuperGLUEConfig(task="cb").train.reseed is True


# ------------------------------------------------------------------------ item 5c: the frozen LM's dtype
def test_a_frozen_lm_computes_in_float16_under_the_authors_lama_code(load_tiny, shared_data):
    from repro.core.batch import collate, pad_id_of
    from repro.experiment.engine import build_scorer

    relation = lama_data.get_relations(shared_data, ["P36"])[0]
    for name in ("gpt2", "bert"):
        backbone = load_tiny(name)
        vocab = lama_data.allowed_vocab(shared_data, "29k", backbone.tokenizer, space_before=True)
        facts, _ = lama_data.filter_facts(lama_data.load_facts(shared_data, relation, "test"), vocab)
        examples = Lama.facts_as_examples(facts[:4], "test")
        for method, choice, lm_dtype in (("ptuning", "preset", torch.float32), ("ptuning", "float16", torch.float16),
                                         ("ft", "float16", torch.float32)):  # a fine-tuned LM is never halved
            config = _lama(method, fidelity_items={"frozen_lm_dtype": choice})
            m = get_method(method, "lama")
            template = method_template(m, relation, backbone, config)
            scorer = build_scorer(Lama(relation, vocab), m, backbone, template, method, config, 34, max_length=None,
                                  quiet=True)
            model = scorer.model
            assert {p.dtype for p in model.lm.parameters()} == {lm_dtype}, (name, method, choice)
            batch = collate(scorer.train_items(examples), pad_id_of(backbone.tokenizer))
            assert model.target_hidden(batch).dtype == lm_dtype
            loss = model.loss(batch)
            loss.backward()
            assert torch.isfinite(loss)
            if model.encoder is not None:  # the encoder keeps fp32 weights and gets finite gradients through fp16
                assert all(p.dtype == torch.float32 and p.grad is not None and torch.isfinite(p.grad).all()
                           for p in model.encoder.parameters())
            backbone.model.to(torch.float32)
    assert LamaConfig(method="mp", fidelity="authors").lm_dtype(get_method("mp", "lama")) == "float16"
    assert LamaConfig(method="mp", preset="paper").lm_dtype(get_method("mp", "lama")) == "float16"  # text silent
    assert LamaConfig(method="mp").lm_dtype(get_method("mp", "lama")) == "bfloat16"  # the cpu preset's
    cfg = SuperGLUEConfig(task="cb", preset="paper", fidelity="authors", method="ptuning-frozen")
    assert cfg.lm_dtype(get_method("ptuning-frozen", "superglue")) == "float32"  # PT-Fewshot never halves the LM


# ------------------------------------------------------------------------------- item 11: weight decay scope
@pytest.mark.parametrize("name", ["gpt2", "bert", "albert", "llama"])
def test_which_lm_parameters_decay(load_tiny, name):
    from repro.core.model import PromptedLM
    from repro.core.training import build_optimizer

    model = PromptedLM(load_tiny(name), train_backbone=True)
    named = dict(model.named_parameters())
    names = {id(p): n for n, p in named.items()}
    decayed = {}
    for scope in fid.VALUES["decay_scope"]:
        optimizer = build_optimizer(model.trainable_parameters(), named, TrainConfig(weight_decay=0.1, max_steps=1,
                                                                                    decay_scope=scope))
        decayed[scope] = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    everything = set(named)
    assert decayed["all"] == everything  # LAMA/cli.py: Adam(..., weight_decay) over every parameter
    # PT-Fewshot/pet/wrapper.py: no_decay = ['bias', 'LayerNorm.weight'], matched as substrings of the names
    assert decayed["pet"] == {n for n in everything if "bias" not in n and "LayerNorm.weight" not in n}
    assert decayed["norms"] == {n for n in everything if named[n].ndim >= 2 and "norm" not in n.lower()
                                and not n.endswith("bias")}
    norm_weights = {n for n in everything if "norm" in n.lower() or ".ln_" in n}
    assert norm_weights and not norm_weights & decayed["norms"]
    if name == "bert":  # its norms are called LayerNorm: PET's rule spares them too
        assert not norm_weights & decayed["pet"]
    else:  # GPT-2's ln_1, Llama's input_layernorm, ALBERT's full_layer_layer_norm decay under PET's rule
        assert norm_weights & decayed["pet"]
    assert LamaConfig(method="ft", fidelity="authors").train.decay_scope == "all"
    assert SuperGLUEConfig(task="cb", fidelity="authors").train.decay_scope == "pet"
    assert SuperGLUEConfig(task="cb").train.decay_scope == "norms"


# ---------------------------------------------------------------- item 13: the first and last dev checks
def _checks(eval_ends, *, steps=None, epochs=None, every=None, schedule="constant", scores=None):
    """Train the one-parameter toy; (steps run, steps checked, best step, w at each check)."""
    model, seen = _Toy(), []
    it = iter(scores or [])

    def evaluate():
        seen.append(float(model.w))
        return next(it, 0.5)

    cfg = TrainConfig(optimizer="adam", lr_encoder=0.1, batch_size=2, max_steps=steps, max_epochs=epochs,
                      eval_every_steps=every, schedule=schedule, eval_ends=eval_ends)
    outcome = train(model, [0] * 4, lambda b: (model.w - 1).pow(2).sum(), evaluate, cfg, quiet=True)
    return outcome.steps, [h["step"] for h in outcome.history], outcome.best_step, seen


def test_first_and_last_dev_checks():
    assert _checks("suite", steps=5, every=2)[:2] == (5, [2, 4, 5])  # the last step is always checked
    # LAMA/cli.py Trainer.train: a check at each epoch's start, so the untrained model first and never the last
    # epoch; 3 epochs of 2 batches: checks before epochs 0, 1, 2 (steps 0, 2, 4), training ends at step 6
    assert _checks("suite", epochs=3)[:2] == (6, [2, 4, 6])
    assert _checks("lama", epochs=3)[:2] == (6, [0, 2, 4])
    assert _checks("lama", steps=5, every=2)[:2] == (5, [0, 2, 4])
    assert _checks("lama", steps=4, every=2)[:2] == (4, [0, 2])
    # the untrained check is never kept (`epoch_idx > 0`), even when it scores best
    steps, checked, best, _ = _checks("lama", steps=4, every=2, scores=[0.9, 0.1, 0.2])
    assert checked == [0, 2] and best == 2
    # ... but it counts towards early stopping (early_stop += 1): with patience 1 nothing trains
    model = _Toy()
    cfg = TrainConfig(max_steps=4, eval_every_steps=2, patience=1, eval_ends="lama")
    assert train(model, [0] * 4, lambda b: (model.w - 1).pow(2).sum(), lambda: 0.5, cfg, quiet=True).steps == 0
    # PT-Fewshot/pet/wrapper.py: breaks once max_steps < global_step (max_steps + 1 steps), checks on schedule only
    assert _checks("fewshot", steps=5, every=2)[:2] == (6, [2, 4, 6])
    assert _checks("fewshot", steps=4, every=2)[:2] == (5, [2, 4])
    assert _checks("fewshot", epochs=3)[:2] == (6, [2, 4, 6])  # no max_steps: the epochs alone, no extra step
    # the linear schedule spans max_steps, so the extra step runs at lr 0: w does not move; a constant lr moves it
    _, checked, _, w = _checks("fewshot", steps=3, every=1, schedule="linear")
    assert checked == [1, 2, 3, 4] and w[3] == w[2]
    _, _, _, w = _checks("fewshot", steps=3, every=1)
    assert w[3] != w[2]
    assert LamaConfig(method="ptuning", fidelity="authors").train.eval_ends == "lama"
    assert SuperGLUEConfig(task="cb", fidelity="authors").train.eval_ends == "fewshot"


@pytest.mark.parametrize("eval_ends", fid.VALUES["eval_ends"])
def test_the_joint_loop_checks_where_the_single_loop_does(eval_ends):
    from repro.core.joint import JointUnit, train_joint

    configs = [TrainConfig(optimizer="adam", lr_encoder=0.1, batch_size=2, max_steps=5, eval_every_steps=2,
                           eval_ends=eval_ends),
               TrainConfig(optimizer="adam", lr_encoder=0.1, batch_size=2, max_epochs=3, eval_ends=eval_ends)]
    toys = [_Toy() for _ in configs]
    units = [JointUnit(f"u{i}", {"w": t.w}, [0] * (4 + 2 * i), c) for i, (t, c) in enumerate(zip(toys, configs))]

    def losses(parts):
        out = []
        for i, batch in parts:
            loss = (toys[i].w - 1).pow(2).sum()
            loss.backward()
            out.append(float(loss.detach()))
        return out

    outcomes = train_joint(torch.nn.Module(), units, losses, lambda indices: [0.5] * len(indices), quiet=True)
    for i, (config, outcome) in enumerate(zip(configs, outcomes)):
        model = _Toy()
        alone = train(model, [0] * (4 + 2 * i), lambda b: (model.w - 1).pow(2).sum(), lambda: 0.5, config, quiet=True)
        assert [h["step"] for h in outcome.history] == [h["step"] for h in alone.history]
        assert outcome.steps == alone.steps
    assert [h["step"] for h in outcomes[0].history][0] == (0 if eval_ends == "lama" else 2)


# ------------------------------------------------------------------------------------ item 16: WSC masks
def _span_scorer(backbone, wsc_masks: str):
    from repro.experiment.engine import build_scorer

    task = get_task("wsc")
    config = SuperGLUEConfig(task="wsc", method="mp", dtype="float32", fidelity_items={"wsc_masks": wsc_masks})
    template = RunPlan(config, task, [task], get_method("mp", "superglue"), None, [42]).template("pet")
    return build_scorer(task, get_method("mp", "superglue"), backbone, template, "pet", config, 42, max_length=256,
                        quiet=True)


@pytest.mark.parametrize("name", ["albert", "gpt2"])
def test_wsc_masks_exact_or_pets_extra_masks(load_tiny, shared_data, monkeypatch, name):
    """PET's WscPVP.get_parts (pet/pvp.py; the authors' task_pvps.py the same): len(span1 ids) + 1 masks at
    evaluation; in training + rng.randint(0, 3), the PVP's random.Random(42) drawn once per training example
    in order, the extra masks' targets <pad> (WscTaskHelper.add_special_input_features). A causal LM has no
    masks: the span's own length under both."""
    import random

    from repro.scorers import span

    backbone = load_tiny(name)
    tok = backbone.tokenizer
    examples = get_task("wsc").read(shared_data / "fewglue/WSC/train.jsonl")[:6]
    seen = {}

    def spy(model, rendered, lengths, **kwargs):
        seen["lengths"], seen["masks"] = list(lengths), [len(r.target_positions) for r in rendered]
        return [[tok.unk_token_id] * n for n in lengths]

    monkeypatch.setattr(span, "predict_span_tokens", spy)
    out = {}
    for rule in ("exact", "pet"):
        scorer = _span_scorer(backbone, rule)
        spans = [scorer.span_ids(ex) for ex in examples]
        items = scorer.train_items(examples)
        scorer.predict(examples)
        out[rule] = (spans, items, dict(seen))
    spans, items, evaluation = out["exact"]
    assert [r.target_ids for r in items] == spans and evaluation["lengths"] == [len(s) for s in spans]
    spans, items, evaluation = out["pet"]
    if backbone.is_causal:
        assert [r.target_ids for r in items] == spans and evaluation["lengths"] == [len(s) for s in spans]
        return
    rng = random.Random(42)
    expected = [s + [tok.pad_token_id] * rng.randint(0, 3) for s in spans]  # all six FewGLUE rows are positive
    assert [r.target_ids for r in items] == expected and any(len(e) > len(s) for e, s in zip(expected, spans))
    assert [len(r.target_positions) for r in items] == [len(e) for e in expected]
    assert evaluation["lengths"] == evaluation["masks"] == [len(s) + 1 for s in spans]


# --------------------------------------------------------------------------- item 17: COPA training masks
@pytest.mark.parametrize("name", ["albert", "gpt2"])
def test_candidate_training_masks_own_or_pets_longest(load_tiny, shared_data, name):
    """PET (pet/pvp.py CopaPVP.get_parts: max(len c1, len c2) masks; task_helpers.py CopaTaskHelper.train_step:
    both choices read on that one input, each at its first masks) and the authors (task_pvps.py CopaPVP) train
    COPA on the longest choice's mask count; evaluation trims to each choice's own count (trim_input_ids), as
    the suite does under both. A causal LM has no masks: the same items under both."""
    from repro.experiment.engine import build_scorer

    backbone = load_tiny(name)
    mask = backbone.tokenizer.mask_token_id
    task, method = get_task("copa"), get_method("mp", "superglue")
    examples = task.read(shared_data / "fewglue/COPA/train.jsonl")[:8]
    out = {}
    for rule in ("own", "max"):
        config = SuperGLUEConfig(task="copa", method="mp", dtype="float32",
                                 fidelity_items={"candidate_train_masks": rule})
        template = RunPlan(config, task, [task], method, None, [42]).template("pet")
        scorer = build_scorer(task, method, backbone, template, "pet", config, 42, max_length=256, quiet=True)
        out[rule] = (scorer.train_items(examples), [scorer.render(ex) for ex in examples])
        assert torch.isfinite(scorer.loss(out[rule][0][:4]))  # trains on either layout
    own, own_eval = out["own"]
    pet, pet_eval = out["max"]
    assert [[r.input_ids for r in g] for g in own_eval] == [[r.input_ids for r in g] for g in pet_eval]
    assert [[r.target_ids for r in it.rendered] for it in own] == [[r.target_ids for r in it.rendered] for it in pet]
    if backbone.is_causal:
        assert [[r.input_ids for r in it.rendered] for it in own] == [[r.input_ids for r in it.rendered] for it in pet]
        return
    differ = 0
    for a, b in zip(own, pet):
        longest = max(a.rendered, key=lambda r: len(r.target_ids))
        for r_own, r_pet in zip(a.rendered, b.rendered):
            assert r_own.input_ids.count(mask) == len(r_own.target_ids)  # own: each choice its own count
            assert r_pet.input_ids == longest.input_ids  # max: the longest choice's input for both
            first = r_pet.input_ids.index(mask)
            assert r_pet.target_positions == list(range(first, first + len(r_pet.target_ids)))
            differ += r_own.input_ids != r_pet.input_ids
    assert differ > 0, "pick rows whose two choices differ in token count"


# ------------------------------------------------------------------------------------------ the ledger
def _ledger_rows() -> list[str]:
    text = (ROOT / "REPRODUCING.md").read_text()
    section = text.split("## Differences", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|") and not set(line) <= set("|- ")][1:]


def test_every_ledger_row_names_a_flag_that_exists_and_every_item_has_a_row():
    rows = _ledger_rows()
    assert len(rows) >= 8
    flagged = set()
    for row in rows:
        for item, value in re.findall(r"--fidelity-item (\w+)=([\w+-]+)", row):
            assert item in fid.VALUES and value in fid.VALUES[item], row
            flagged.add(item)
    assert flagged == set(fid.VALUES)


def test_every_item_is_recorded_in_the_results(load_tiny, shared_data, tmp_path):
    config = LamaConfig(method="mp", relations=["P36"], dtype="float32", fidelity="authors")
    run_lama(config, root=shared_data, results_root=tmp_path, runs_root=tmp_path / "runs", backbone=load_tiny("gpt2"),
             quiet=True)
    written = json.loads(next(tmp_path.rglob("P36.json")).read_text())
    assert written["config"]["fidelity"] == "authors"
    assert set(written["config"]["fidelity_choices"]) == set(fid.VALUES)
    assert written["config"]["fidelity_choices"]["lama_query"] == "authors" and "is  [MASK]" in written["template"]


# --------------------------------------------------------------------------- item 18: decoding several masks
def _mp_scorers(backbone, task_name: str, item: str, values: tuple[str, ...]):
    from repro.experiment.engine import build_scorer

    task, method = get_task(task_name), get_method("mp", "superglue")
    out = {}
    for value in values:
        config = SuperGLUEConfig(task=task_name, method="mp", dtype="float32", fidelity_items={item: value})
        template = RunPlan(config, task, [task], method, None, [42]).template("pet")
        out[value] = build_scorer(task, method, backbone, template, "pet", config, 42, max_length=256, quiet=True)
    return out


def _inner(scorer):
    """The scorer inside its render cache (`repro.experiment.renders.CachedScorer`)."""
    return getattr(scorer, "inner", scorer)


def _full_log_probs(model, ids: list[int]) -> torch.Tensor:
    """The plain LM's log-probabilities at every position of one input (MP: no prompt tokens)."""
    with torch.no_grad():
        return model.lm(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_candidates_decode_jointly_or_most_confident_first(load_tiny, shared_data, name):
    """PET (pet/task_helpers.py CopaTaskHelper._get_choice_log_probability, RecordTaskHelper
    _get_choice_probabilities_batched; THUDM/P-tuning PT-Fewshot/pet/task_helpers.py CopaTaskHelper the same): run
    the model, fill the mask where the choice's own token is most probable, add that log-probability, run again
    until no mask is left. Written out below on the plain LM; the suite's default sums all masks of one forward."""
    from repro import pet_decoding
    from repro.core.inference import token_log_probs

    scorers = _mp_scorers(load_tiny(name), "copa", "decoding", ("joint", "pet"))
    pet = scorers["pet"]
    assert type(_inner(scorers["joint"])).__name__ == "CandidateScorer"
    assert isinstance(_inner(pet), pet_decoding.PetCandidateScorer)
    model = pet.model.eval()
    examples = get_task("copa").read(shared_data / "fewglue/COPA/train.jsonl")[:8]
    rendered = [r for ex in examples for r in pet.render(ex)]
    expected = []
    for r in rendered:
        ids, todo, total = list(r.input_ids), dict(zip(r.target_positions, r.target_ids)), 0.0
        while todo:
            lp = _full_log_probs(model, ids)
            pos = max(todo, key=lambda p: (float(lp[p, todo[p]]), -p))  # most probable; the first of a tie
            total += float(lp[pos, todo[pos]])
            ids[pos] = todo.pop(pos)
        expected.append(total)
    with torch.no_grad():
        got = [float(s.sum()) for s in pet_decoding.candidate_log_probs(model, rendered, batch_size=4)]
        joint = [float(s.sum()) for s in token_log_probs(model, rendered)]
    assert got == pytest.approx(expected, abs=1e-4)
    multi = [i for i, r in enumerate(rendered) if len(r.target_ids) > 1]
    assert multi and any(abs(got[i] - joint[i]) > 1e-3 for i in multi)  # the switch changes the scores
    single = [i for i, r in enumerate(rendered) if len(r.target_ids) == 1]
    assert all(abs(got[i] - joint[i]) < 1e-4 for i in single)  # one mask: one forward either way
    pairs = [expected[k : k + 2] for k in range(0, len(expected), 2)]
    assert pet.predict(examples) == [int(b > a) for a, b in pairs]


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_wsc_span_decodes_in_one_pass_or_most_confident_first(load_tiny, shared_data, name):
    """PET's WscTaskHelper.eval_step (timoschick/pet pet/task_helpers.py; PT-Fewshot/pet/task_helpers.py the same):
    run the model, put at the mask whose argmax token is most probable that token, run again until no mask is
    left; the prediction is the text at the original masks, special tokens dropped. The suite's default takes
    the argmax at every mask of one forward."""
    scorers = _mp_scorers(load_tiny(name), "wsc", "decoding", ("joint", "pet"))
    pet = scorers["pet"]
    model = pet.model.eval()
    tok = model.backbone.tokenizer
    examples = get_task("wsc").read(shared_data / "fewglue/WSC/train.jsonl")[:16]
    expected, one_pass = [], []
    for ex in examples:
        r = _inner(pet)._render(ex, None, len(_inner(pet).span_ids(ex)))
        ids, todo = list(r.input_ids), list(r.target_positions)
        first = _full_log_probs(model, ids)
        one_pass.append(tok.decode([int(first[p].argmax()) for p in r.target_positions], skip_special_tokens=True))
        while todo:
            lp = _full_log_probs(model, ids)
            pos = max(todo, key=lambda p: (float(lp[p].max()), -p))
            ids[pos] = int(lp[pos].argmax())
            todo.remove(pos)
        expected.append(tok.decode([ids[p] for p in r.target_positions], skip_special_tokens=True).strip())
    assert pet.predict(examples) == expected
    assert scorers["joint"].predict(examples) == [t.strip() for t in one_pass]
    assert expected != [t.strip() for t in one_pass]  # the switch changes what is predicted


def test_causal_scorers_decode_alike_under_both_choices(load_tiny):
    """A causal LM scores by teacher forcing (exact): `decoding=pet` leaves its scorers as they are."""
    for task in ("copa", "wsc"):
        scorers = _mp_scorers(load_tiny("gpt2"), task, "decoding", ("joint", "pet"))
        assert type(_inner(scorers["joint"])) is type(_inner(scorers["pet"]))
        assert "decoding" not in scorers["pet"].describe()


# --------------------------------------------------------------------------- item 19: spacing between parts
@pytest.mark.parametrize("name", ["roberta", "gpt2", "albert"])
def test_parts_spaced_as_the_template_or_as_pets_prefix_spaces(load_tiny, shared_data, name):
    """PET's PVP.encode (timoschick/pet pet/pvp.py; PT-Fewshot/data_utils/task_pvps.py the same) tokenizes each part
    of BoolQ's pattern 0, [passage, '. Question: ', question, '? Answer: ', mask, '.'], alone, with
    `add_prefix_space=True` on GPT-2 tokenizers (RoBERTa's is one): the tokens of ' ' + part, so the passage
    starts with a spaced word and 'Question: ' / 'Answer: ' end in a lone space token; the verbalizer ids are
    those of ' Yes' (get_verbalization_ids). SentencePiece (ALBERT) adds no space of its own: both sides alike."""
    from repro.core.template import leading_space_matters, special_token_frame, word_token_ids

    backbone = load_tiny(name)
    tok, causal = backbone.tokenizer, backbone.is_causal
    template = get_task("boolq").template("manual", "pet")
    frame = special_token_frame(tok, causal=causal)

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    changed = 0
    for ex in get_task("boolq").read(shared_data / "fewglue/BoolQ/train.jsonl")[:3]:
        rendered = {}
        for rule in ("template", "pet"):
            spaced = template.with_spacing(rule)
            answer = word_token_ids(tok, "Yes", space_before=spaced.target_space_before)
            r = spaced.render(tok, ex.values, causal=causal, target_ids=answer if causal else None)
            rendered[rule] = (r.input_ids, answer)
        ids, answer = rendered["pet"]
        if not leading_space_matters(tok):
            assert rendered["pet"] == rendered["template"]
            continue
        assert answer == enc(" Yes")
        target, tail = (answer[:-1], []) if causal else ([tok.mask_token_id], enc(" ."))
        expected = (enc(" " + ex.values["passage"]) + enc(" . Question: ") + enc(" " + ex.values["question"])
                    + enc(" ? Answer: ") + target + tail)
        assert ids == list(frame.prefix) + expected + list(frame.suffix)
        changed += rendered["pet"] != rendered["template"]
    assert changed == (3 if leading_space_matters(tok) else 0)
    assert leading_space_matters(tok) == (name != "albert")


def test_a_switch_added_later_keeps_earlier_fingerprints_and_counts_once_chosen():
    """Items added after results were committed enter a fingerprint only off their default; a side that runs code
    outside the scorer-code hash adds that code's hash. A committed result's fields are rebuilt unchanged."""
    from repro.experiment.fingerprints import code_version

    view = SuperGLUEConfig(task="copa", method="mp").fingerprint_data()["fidelity_choices"]
    assert set(view) == set(fid.VALUES) - set(fid.ADDED_LATER)
    chosen = SuperGLUEConfig(task="copa", method="mp", fidelity_items={"decoding": "pet", "part_spacing": "pet"})
    view = chosen.fingerprint_data()["fidelity_choices"]
    assert (view["decoding"], view["part_spacing"]) == ("pet", "pet")
    assert view["decoding_code"] == code_version(("repro/pet_decoding.py",)) != code_version()
    assert chosen.to_dict()["fidelity_choices"] == chosen.choices.to_dict()  # the record holds every item
    written = json.loads((ROOT / "results/superglue/fewshot/smollm2-135m/ptuning/cb.json").read_text())
    assert SuperGLUEConfig.from_dict(written["config"]).fingerprint_data() == written["fingerprint_fields"]["config"]
