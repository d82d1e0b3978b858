"""The authors' few-shot P-tuning patterns (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py, pattern 1 of
each PVP) rebuilt from that reading, part by part as PET's `PVP.encode` tokenizes them (each part alone, no
special tokens, then [CLS] ... [SEP]; "the" parts flagged as prompt tokens), on three real FewGLUE examples per
task and a tiny ALBERT tokenizer: the suite's rendering must give the same tokens, prompt positions and [MASK]
position. WiC's word marker is the one known difference (REPRODUCING.md, Differences, row 12)."""

from __future__ import annotations

import string

import pytest

from tasks.registry import get_task

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
    if task == "wic":  # WicPVP: word = "*" + word + " *", then word + "?"
        return [(v["sentence1"], False), ("[SEP]", False), (v["sentence2"], False), ("the", True),
                ("*" + v["word"] + " *" + "?", False), (mask, False)]
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
    for ex in examples:
        r = template.render(tok, ex.values, causal=False, target_ids=[5])
        ids, prompt = _encode(tok, _authors(task, ex.values, tok.mask_token))
        if task == "wic":  # the suite writes "*word* ?" with the word encoded alone; the authors "*word *?" as one
            assert r.prompt_positions == prompt  # the same up to the marker
            assert _masked(r.input_ids, r.prompt_positions)[:prompt[0] + 1] == _masked(ids, prompt)[:prompt[0] + 1]
            assert _masked(r.input_ids, r.prompt_positions) != _masked(ids, prompt)
            continue
        assert r.prompt_positions == prompt and r.target_positions == [ids.index(tok.mask_token_id)]
        assert _masked(r.input_ids, r.prompt_positions) == _masked(ids, prompt)
