"""MultiRC's shared passages run once on a causal LM (`repro.shared_prefix`): the groups, the scores against the
plain path on real MultiRC rows (MP and P-tuning, prompt tokens before and after the cut), and the fingerprint."""

from __future__ import annotations

import pytest
import torch

from repro import shared_prefix
from repro.core.batch import collate
from repro.core.template import Rendered, Template
from repro.experiment.engine import build_scorer
from repro.experiment.superglue import RunPlan
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import get_method
from repro.scorers.classification import VerbalizerScorer
from repro.tasks.registry import get_task


def _r(ids, prompts=(), target=None) -> Rendered:
    ids = list(ids)
    return Rendered(ids, [0] * len(ids), list(prompts), [len(ids) - 1 if target is None else target], None)


def test_groups_share_the_longest_common_start_and_leave_strangers_alone():
    passage = list(range(100, 140))  # 40 tokens
    a, b, c = _r(passage + [1, 2, 3]), _r(passage[:35] + [9, 9]), _r(passage + [1, 2, 4, 5])
    stranger = _r(list(range(500, 560)))
    groups = shared_prefix.shared_groups([a, b, stranger, c], min_shared=32)
    by_members = {tuple(sorted(g.members)): g.cut for g in groups}
    assert by_members == {(0, 1, 3): 35, (2,): 0}
    assert {tuple(g.members): g.cut for g in shared_prefix.shared_groups([a, c], min_shared=43)} == {(0,): 0, (1,): 0}


def test_the_cut_keeps_targets_and_later_prompt_tokens_in_each_example():
    passage = list(range(100, 150))
    # the target at 40 of one example: the cut moves back to 40
    groups = shared_prefix.shared_groups([_r(passage, target=40), _r(passage + [7])], min_shared=32)
    assert [g.cut for g in groups] == [40]
    # a prompt token before the cut in one example only: the two cannot share it
    groups = shared_prefix.shared_groups([_r(passage, prompts=[5]), _r(passage + [7])], min_shared=32)
    assert [g.cut for g in groups] == [0] and sorted(groups[0].members) == [0, 1]
    # the same leading prompt token in both: shared; prompt tokens out of order keep all of them after the cut
    groups = shared_prefix.shared_groups([_r(passage, prompts=[5, 45]), _r(passage + [7], prompts=[5, 46])])
    assert [g.cut for g in groups] == [45]
    groups = shared_prefix.shared_groups([_r(passage, prompts=[45, 5]), _r(passage + [7], prompts=[46, 5])])
    assert [g.cut for g in groups] == [0]


def _scorer(backbone, method: str, pattern: str, text: str = ""):
    task = get_task("multirc")
    config = SuperGLUEConfig(task="multirc", method=method, dtype="float32")
    plan = RunPlan(config, task, [task], get_method(method, "superglue"), None, [42])
    template = Template.parse(text, masked=not backbone.is_causal) if text else plan.template(pattern)
    return build_scorer(task, plan.method, backbone, template, pattern, config, 42, max_length=128, quiet=True)


def _inner(scorer):
    return getattr(scorer, "inner", scorer)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("method,text", [
    ("mp", ""),
    ("ptuning", ""),  # the paper's pattern: [P] after the answer, in each example's own part
    ("ptuning", "[P*2] {passage:shorten} . Question: {question} ? Is it {answer} ? [P] [MASK] ."),  # before the cut too
])
def test_shared_scores_equal_the_plain_path_on_multirc(load_tiny, shared_data, monkeypatch, name, method, text):
    backbone = load_tiny(name)
    # "Yes" is two tokens in the tiny vocabulary (one in SmolLM2's and Gemma 3's): words of one token here
    monkeypatch.setattr(type(get_task("multirc")), "verbalizer", {0: "the", 1: "of"})
    scorer = _scorer(backbone, method, "pet" if method == "mp" else "paper", text)
    inner = _inner(scorer)
    assert isinstance(inner, shared_prefix.SharedPrefixVerbalizerScorer)
    examples = get_task("multirc").read(shared_data / "superglue/MultiRC/val.jsonl")[:60]
    rendered = inner.eval_inputs(examples)
    groups = shared_prefix.shared_groups(rendered)
    assert len(groups) < len(rendered) / 4 and all(g.cut >= shared_prefix.MIN_SHARED for g in groups if g.cut)
    if text:
        assert all(max(rendered[g.members[0]].prompt_positions[:2]) < g.cut for g in groups if g.cut)
    model = inner.model.eval()
    if model.encoder is not None:  # trained-looking prompts, so that a misplaced one would show
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.encoder.parameters():
                p.add_(torch.randn_like(p))
    got = shared_prefix.candidate_scores(model, rendered, inner.candidate_ids, batch_size=7, quiet=True)
    with torch.no_grad():
        plain = torch.cat([model.candidate_logits(collate([r], 0), inner.candidate_ids)[:, 0]
                           for r in rendered])
    assert torch.allclose(got, plain, atol=1e-4), (got - plain).abs().max()
    plain_scorer = VerbalizerScorer(inner.ctx)
    assert scorer.predict(examples) == plain_scorer.predict(examples)


def test_masked_lms_and_other_tasks_keep_the_plain_scorer(load_tiny, monkeypatch):
    monkeypatch.setattr(type(get_task("multirc")), "verbalizer", {0: "the", 1: "of"})  # one token on tiny BERT
    assert type(_inner(_scorer(load_tiny("bert"), "mp", "pet"))) is VerbalizerScorer
    task = get_task("cb")
    config = SuperGLUEConfig(task="cb", method="mp", dtype="float32")
    plan = RunPlan(config, task, [task], get_method("mp", "superglue"), None, [42])
    scorer = build_scorer(task, plan.method, load_tiny("gpt2"), plan.template("pet"), "pet", config, 42,
                          max_length=128, quiet=True)
    assert type(_inner(scorer)) is VerbalizerScorer


def test_multirc_results_record_the_module_code_and_other_tasks_do_not():
    from repro.experiment.fingerprints import code_version

    multirc = SuperGLUEConfig(task="multirc", method="mp").fingerprint_data()
    assert multirc["shared_prefix_code"] == code_version(shared_prefix.CODE) != code_version()
    assert "shared_prefix_code" not in SuperGLUEConfig(task="boolq", method="mp").fingerprint_data()
