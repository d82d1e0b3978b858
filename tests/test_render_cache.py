"""Rendered inputs cached across runs (repro/experiment/renders.py): a second run on the same data renders
nothing (LAMA and a SuperGLUE task on tiny backbones, counting every rendering made), gives the same numbers,
and a changed template, tokenizer or data gives another key and fresh renderings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from repro.core.template import Template
from repro.experiment import renders
from repro.experiment.engine import build_scorer
from repro.experiment.lama import PRESETS as LAMA_PRESETS, LamaConfig, run_lama
from repro.experiment.superglue import run_superglue
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import get_method
from repro.tasks.registry import get_task
from test_superglue_engine import whole_words

RELATIONS = ["P101", "P1376"]


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A fresh render cache under tmp_path, one thread, and a counter of the renderings made
    (`Template.render_uncached`, where every rendering is made)."""
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(renders.ENV_SWITCH, raising=False)
    calls = {"n": 0}
    real = Template.render_uncached

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Template, "render_uncached", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield calls
    torch.set_num_threads(before)


def _made(calls, run):
    calls["n"] = 0
    out = run()
    return calls["n"], out


def _lama(load_tiny, shared_data, results, method: str, **kwargs):
    train = replace(LAMA_PRESETS["cpu"].train, max_steps=2, eval_every_steps=1, batch_size=4, lr_encoder=1e-2)
    config = LamaConfig(method=method, relations=RELATIONS, train=train, max_train=8, max_dev=8, dtype="float32",
                        eval_batch_size=16, **kwargs)
    return run_lama(config, root=shared_data, results_root=results, backbone=load_tiny("gpt2"), quiet=True)


def test_second_lama_run_renders_nothing_and_scores_the_same(counted, load_tiny, shared_data, tmp_path):
    """MP scores every test fact; P-tuning trains on train/dev facts and tests: each renders its facts once, and
    a rerun into another results folder (so nothing is reused) renders none, with the same numbers."""
    colds = {}
    for method in ("mp", "ptuning"):
        first, colds[method] = _made(counted, lambda: _lama(load_tiny, shared_data, tmp_path / f"{method}-1", method))
        again, warm = _made(counted, lambda: _lama(load_tiny, shared_data, tmp_path / f"{method}-2", method))
        assert first > 0 and again == 0, method  # (facts with the same subject share one rendering)
        assert [warm[k] for k in ("macro_p_at_1", "micro_p_at_1", "relations")] == \
            [colds[method][k] for k in ("macro_p_at_1", "micro_p_at_1", "relations")]
    assert list((tmp_path / "cache" / renders.CACHE_SUBDIR).glob("*.arrow")), "Dataset.map's cache files"
    # the cache switched off: every fact rendered again, the same numbers
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(renders.ENV_SWITCH, "0")
        off, plain = _made(counted, lambda: _lama(load_tiny, shared_data, tmp_path / "off", "mp"))
    assert off > 0 and plain["relations"] == colds["mp"]["relations"]


def _cb(seeds, method="ptuning"):
    config = SuperGLUEConfig(task="cb", method=method, preset="cpu", seeds=seeds, max_train=4, max_dev=4, max_eval=16,
                             dtype="float32", sequential=True)
    config.train = replace(config.train, max_steps=2, batch_size=2, eval_every_steps=1)
    return config


def test_second_superglue_run_and_another_seed_render_nothing(counted, load_tiny, shared_data, tmp_path):
    def run(config, where):
        return run_superglue(config, root=shared_data, results_root=tmp_path / where, runs_root=tmp_path / f"{where}-r",
                             backbone=load_tiny("gpt2"), quiet=True)

    first, cold = _made(counted, lambda: run(_cb([42]), "a"))
    again, warm = _made(counted, lambda: run(_cb([42]), "b"))
    other_seed, _ = _made(counted, lambda: run(_cb([7]), "c"))
    assert first > 0 and again == 0 and other_seed == 0
    assert warm["cb"]["seeds"] == cold["cb"]["seeds"] and warm["cb"]["training"]["42"]["history"] == \
        cold["cb"]["training"]["42"]["history"]
    # another method renders its own pattern once
    mp_first, _ = _made(counted, lambda: run(_cb([42], "mp"), "d"))
    mp_again, _ = _made(counted, lambda: run(_cb([42], "mp"), "e"))
    assert mp_first > 0 and mp_again == 0


def _scorer(backbone, task_name="cb", pattern=None, config=None):
    task = get_task(task_name)
    method = get_method("mp", "superglue")
    config = config or SuperGLUEConfig(task=task_name, method="mp", preset="cpu", dtype="float32")
    variant = pattern or task.default_variant("manual", causal=backbone.is_causal)
    return build_scorer(task, method, backbone, task.template("manual", variant), variant, config, 42, max_length=64,
                        quiet=True)


def test_cached_renderings_equal_fresh_ones_and_keys_follow_template_tokenizer_and_data(counted, load_tiny,
                                                                                        shared_data):
    backbone = whole_words(load_tiny("bert"))  # one token per verbalizer word, as a masked LM needs
    task = get_task("cb")
    examples = task.read(shared_data / task.files().eval)[:12]
    scorer = _scorer(backbone)
    assert isinstance(scorer, renders.CachedScorer)
    made, cached_inputs = _made(counted, lambda: scorer.eval_inputs(examples))
    assert made == len(examples)
    fresh = [scorer.ctx.template.with_memo(None).render(backbone.tokenizer, ex.values, causal=False, max_length=64)
             for ex in examples]
    assert cached_inputs == fresh  # the same token ids, positions and targets as an uncached rendering
    key = scorer.key(examples, "eval")

    # a new scorer of the same settings reads the file: nothing rendered
    again = _scorer(backbone)
    assert again.key(examples, "eval") == key
    assert _made(counted, lambda: again.eval_inputs(examples))[0] == 0

    # another template, changed data, another tokenizer: other keys, and renderings made again
    other = _scorer(backbone, pattern=task.pattern_variants("manual")[1])
    assert other.key(examples, "eval") != key
    assert _made(counted, lambda: other.eval_inputs(examples))[0] == len(examples)
    edited = [replace(examples[0], values={**examples[0].values, "premise": "Edited."}), *examples[1:]]
    fresh_scorer = _scorer(backbone)
    assert fresh_scorer.key(edited, "eval") != key
    assert _made(counted, lambda: fresh_scorer.eval_inputs(edited))[0] >= 1
    from tokenizers import AddedToken

    backbone.tokenizer.add_tokens([AddedToken("Edited", single_word=True)])
    grown = _scorer(backbone)
    assert grown.key(examples, "eval") != key
    assert _made(counted, lambda: grown.eval_inputs(examples))[0] == len(examples)


def test_a_memo_answers_only_its_own_template_and_tokenizer(counted, load_tiny):
    backbone = load_tiny("gpt2")
    tok = backbone.tokenizer
    template = Template.parse("{sub} is in [MASK] .")
    memo = renders.RenderMemo(template, tok)
    bound = template.with_memo(memo)
    memo.template = bound
    first = bound.render(tok, {"sub": "Paris"}, causal=True, target_ids=[5])
    assert counted["n"] == 1 and memo.rendered == 1
    again = bound.render(tok, {"sub": "Paris"}, causal=True, target_ids=[5])
    assert counted["n"] == 1 and again == first and again is not first  # a fresh copy: callers set fields on it
    again.prompt_offset = 9
    assert bound.render(tok, {"sub": "Paris"}, causal=True, target_ids=[5]).prompt_offset == 0
    bound.render(tok, {"sub": "Paris"}, causal=True, target_ids=[6])  # another target: another request
    assert counted["n"] == 2
    # the same memo under another truncation rule or another tokenizer is bypassed, never answered from
    bound.with_truncation("last").render(tok, {"sub": "Paris"}, causal=True, target_ids=[5])
    bound.render(load_tiny("llama").tokenizer, {"sub": "Paris"}, causal=True, target_ids=[5])
    assert counted["n"] == 4 and memo.rendered == 2
