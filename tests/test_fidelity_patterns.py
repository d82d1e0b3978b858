"""The authors' few-shot P-tuning patterns (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py, pattern 1 of
each PVP) rebuilt from that reading, part by part as PET's `PVP.encode` tokenizes them (each part alone, no
special tokens, then [CLS] ... [SEP]; "the" parts flagged as prompt tokens), on three real FewGLUE examples per
task and a tiny ALBERT tokenizer: the suite's rendering must give the same tokens, prompt positions and [MASK]
position. WiC's word marker is the one known difference (REPRODUCING.md, Differences, row 12): the suite's text
differs there, and fidelity item pattern_text=authors renders the task's `authors_patterns`, which must give the
authors' tokens too."""

from __future__ import annotations

import string

import pytest

from repro import fidelity as fid
from repro.experiment.superglue import RunPlan
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import get_method
from repro.tasks.registry import get_task, task_names

M = "[MASK]"


def _authors(task: str, v: dict, mask: str) -> list[tuple[str, bool]]:
    """(text, is prompt token) parts of the authors' pattern 1, written from task_pvps.py."""
    if task == "rte":  # RtePVP: text_b loses its final punctuation
        return [(v["premise"], False), ("Question:", False), (v["hypothesis"].rstrip(string.punctuation), False),
                ("?", False), ("the", True), ("Answer:", False), (mask, False), (".", False)]
    if task == "cb":  # CbPVP
        return [(v["premise"], False), ("[SEP]", False), (v["hypothesis"], False), ("?", False), ("the", True),
                (" answer: ", False), (mask, False)]
    if task == "boolq":  # BoolQPVP
        return [(v["passage"], False), (".", False), ("the", True), (" Question: ", False), (v["question"], False),
                ("? Answer: ", False), (mask, False), (".", False)]
    if task == "multirc":  # MultiRcPVP
        return [(v["passage"], False), (". Question: ", False), (v["question"], False), ("? Is it ", False),
                (v["answer"], False), ("?", False), ("the", True), (mask, False), (".", False)]
    if task == "wic":  # WicPVP: word = "*" + word + " *", then word + "?" as one part
        return [(v["sentence1"], False), ("[SEP]", False), (v["sentence2"], False), ("the", True),
                ("*" + v["word"] + " *" + "?", False), (mask, False)]
    if task == "wic-s1":  # WicPVP's first searched pattern: the marked word, then "?" as its own part
        return [(v["sentence1"], False), ("[SEP]", False), (v["sentence2"], False), ("the", True),
                ("*" + v["word"] + " *", False), ("?", False), (mask, False)]
    raise KeyError(task)


def _encode(tok, parts):
    ids, prompt = [tok.cls_token_id], []
    for text, is_prompt in parts:
        piece = tok.encode(text, add_special_tokens=False) if text else []
        if is_prompt:
            prompt += list(range(len(ids), len(ids) + len(piece)))
        ids += piece
    return ids + [tok.sep_token_id], prompt


def _masked(ids, prompt):
    return ["P" if i in prompt else t for i, t in enumerate(ids)]


@pytest.fixture(scope="module")
def albert_tok(tiny_dirs):
    from repro.core.backbone import load_backbone

    return load_backbone(str(tiny_dirs["albert"])).tokenizer


@pytest.mark.parametrize("task, folder", [("rte", "RTE"), ("cb", "CB"), ("boolq", "BoolQ"), ("multirc", "MultiRC"),
                                          ("wic", "WiC")])
def test_the_paper_pattern_is_the_authors_token_by_token(shared_data, albert_tok, task, folder):
    tok = albert_tok
    t = get_task(task)
    examples = t.read(shared_data / "fewglue" / folder / "train.jsonl")[:3]
    template = t.template("ptuning", "paper")
    assert template.num_prompt_tokens == 1
    authors = _plan(task, "authors").template("paper")
    assert authors.num_prompt_tokens == 1
    for ex in examples:
        r = template.render(tok, ex.values, causal=False, target_ids=[5])
        a = authors.render(tok, ex.values, causal=False, target_ids=[5])
        ids, prompt = _encode(tok, _authors(task, ex.values, tok.mask_token))
        # pattern_text=authors: the authors' tokens, prompt positions and [MASK] position, whatever the task
        assert a.prompt_positions == prompt and a.target_positions == [ids.index(tok.mask_token_id)]
        assert _masked(a.input_ids, a.prompt_positions) == _masked(ids, prompt)
        if task == "wic":  # the suite writes "*word* ?" with the word encoded alone; the authors "*word *?" as one
            assert r.prompt_positions == prompt  # the same up to the marker
            assert _masked(r.input_ids, r.prompt_positions)[:prompt[0] + 1] == _masked(ids, prompt)[:prompt[0] + 1]
            assert _masked(r.input_ids, r.prompt_positions) != _masked(ids, prompt)
            continue
        assert r.prompt_positions == prompt and r.target_positions == [ids.index(tok.mask_token_id)]
        assert _masked(r.input_ids, r.prompt_positions) == _masked(ids, prompt)


def _plan(task: str, text: str) -> RunPlan:
    t = get_task(task)
    config = SuperGLUEConfig(task=task, fidelity_items={"pattern_text": text})
    return RunPlan(config, t, [t], get_method("ptuning", "superglue"), None, [42])


def test_wic_searched_pattern_in_the_authors_text(shared_data, albert_tok):
    tok = albert_tok
    ex = get_task("wic").read(shared_data / "fewglue/WiC/train.jsonl")[0]
    ids, prompt = _encode(tok, _authors("wic-s1", ex.values, tok.mask_token))
    rendered = {text: _plan("wic", text).template("s1").render(tok, ex.values, causal=False, target_ids=[5])
                for text in fid.VALUES["pattern_text"]}
    assert _masked(rendered["authors"].input_ids, rendered["authors"].prompt_positions) == _masked(ids, prompt)
    assert _masked(rendered["suite"].input_ids, rendered["suite"].prompt_positions) != _masked(ids, prompt)


def test_authors_patterns_override_existing_variants_with_the_same_prompt_tokens():
    declared = 0
    for name in task_names():
        t = get_task(name)
        for variant, text in t.authors_patterns.items():
            style = next(s for s in ("ptuning", "manual") if variant in t.patterns(s))  # an existing variant
            suite, authors = t.template(style, variant), t.template(style, variant, text="authors")
            assert str(authors) == text and str(suite) != text
            assert authors.num_prompt_tokens == suite.num_prompt_tokens
            declared += 1
        for variant in set(t.patterns("ptuning")) - set(t.authors_patterns):  # nothing declared: the suite's text
            assert str(t.template("ptuning", variant, text="authors")) == str(t.template("ptuning", variant))
    assert declared >= 1
