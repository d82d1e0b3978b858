"""Templates: parsing (string and tuple forms), errors, and rendering checked token by token."""

from __future__ import annotations

import pytest

from repro.core.template import Prompt, Slot, Target, Template, TemplateError, Text, word_token_ids


def test_string_form_parts_and_spacing():
    t = Template.parse("[P*3] {sub} [P*3] [MASK] [P*3]")
    assert t.parts == (Prompt(3), Slot("sub", space_before=True), Prompt(3), Target(space_before=True), Prompt(3))
    assert t.num_prompt_tokens == 9 and t.slots == ("sub",) and not t.is_prefix_only()


def test_tuple_forms_agree_with_the_string_form():
    masked = Template.parse("[P*3] {sub} [P*3] [MASK] [P*3]")
    assert Template.parse((3, "sub", 3, "obj", 3)).parts == masked.parts
    assert Template.parse("(3, sub, 3, obj, 3)").parts == masked.parts
    assert Template.parse((3, 3, 3)).parts == masked.parts
    causal = Template.parse("[P*3] {sub} [P*3] [MASK]")
    assert Template.parse((3, "sub", 3, "obj")).parts == causal.parts
    assert Template.parse((3, 3), masked=False).parts == causal.parts
    # the authors' code appends "." when no prompt follows the mask of a masked LM
    assert Template.parse((3, 3, 0)).parts[-1] == Text(" .")


def test_rte_pattern_with_anchor_and_shortenable_slot():
    t = Template.parse("{premise:shorten} Question: {hypothesis} ? [P*2] Answer: [MASK] .")
    assert t.parts == (
        Slot("premise", shortenable=True), Text(" Question:"), Slot("hypothesis", space_before=True),
        Text(" ?"), Prompt(2), Text(" Answer:"), Target(space_before=True), Text(" ."),
    )


def test_manual_prompt_has_no_prompt_token():
    t = Template.parse("{sub} was born in [MASK] .")
    assert t.num_prompt_tokens == 0 and t.is_prefix_only()
    assert str(t) == "{sub} was born in [MASK] ."


@pytest.mark.parametrize("spec, message", [
    ("{sub} is in [MASK", "unbalanced '\\['"),
    ("{sub} [Q] [MASK]", "unknown element \\[Q\\] at column 7"),
    ("{sub} is in", "exactly one \\[MASK\\]"),
    ("[MASK] {sub} [MASK]", "found 2"),
    ("{1sub} [MASK]", "unknown element"),
    ("[P*0] {sub} [MASK]", "positive count"),
    ("{sub:long} [MASK]", "unknown element \\{sub:long\\}"),
    ((3, 3, 3, 3), "2 or 3 numbers"),
    ((3, "sub", -1, "obj"), "bad item -1"),
])
def test_malformed_templates_point_at_the_bad_part(spec, message):
    with pytest.raises(TemplateError, match=message):
        Template.parse(spec)


def _tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


def test_masked_rendering_token_by_token(load_tiny):
    tok = load_tiny("bert").tokenizer
    t = Template.parse("[P*2] {sub} [P] [MASK] [P]")
    r = t.render(tok, {"sub": "Paris"}, causal=False)
    sub = tok("Paris", add_special_tokens=False)["input_ids"]
    n = len(sub)
    assert r.input_ids[0] == tok.cls_token_id and r.input_ids[-1] == tok.sep_token_id
    assert r.input_ids[3 : 3 + n] == sub
    assert r.prompt_positions == [1, 2, 3 + n, 5 + n]
    assert r.target_positions == [4 + n] and r.input_ids[4 + n] == tok.mask_token_id
    assert len(r.input_ids) == 7 + n and r.target_ids is None


def test_masked_multi_token_target_gets_one_mask_per_token(load_tiny):
    tok = load_tiny("roberta").tokenizer
    t = Template.parse("{sub} is located in [MASK] .")
    target = word_token_ids(tok, "Saint Petersburg", space_before=t.target_space_before)
    r = t.render(tok, {"sub": "Moscow"}, causal=False, target_ids=target)
    assert len(target) > 1
    assert [r.input_ids[p] for p in r.target_positions] == [tok.mask_token_id] * len(target)
    assert r.target_positions == list(range(r.target_positions[0], r.target_positions[0] + len(target)))
    assert _tokens(tok, r.input_ids[r.target_positions[-1] + 1 : -1]) == ["Ġ."]


def test_causal_rendering_reads_the_position_before_each_target_token(load_tiny):
    tok = load_tiny("gpt2").tokenizer
    t = Template.parse("[P*3] {sub} [P*3] [MASK]")
    target = word_token_ids(tok, "Saint Petersburg", space_before=True)
    r = t.render(tok, {"sub": "Moscow"}, causal=True, target_ids=target)
    sub = tok(" Moscow", add_special_tokens=False)["input_ids"]
    n = len(sub)
    assert r.prompt_positions == [0, 1, 2, 3 + n, 4 + n, 5 + n]
    assert r.input_ids[3 : 3 + n] == sub
    # the last target token is never an input; each target token is read one position earlier
    assert r.input_ids[6 + n :] == target[:-1]
    assert r.target_positions == list(range(5 + n, 5 + n + len(target)))
    for pos, gold in zip(r.target_positions, target):
        assert pos + 1 == len(r.input_ids) or r.input_ids[pos + 1] == gold


def test_causal_rendering_keeps_bos_and_drops_text_after_the_target(load_tiny):
    tok = load_tiny("llama").tokenizer
    t = Template.parse("{sub} was born in [MASK] .")
    r = t.render(tok, {"sub": "Dante"}, causal=True)
    assert r.input_ids[0] == tok.bos_token_id
    assert r.input_ids[1:] == tok("Dante was born in", add_special_tokens=False)["input_ids"]
    assert r.target_positions == [len(r.input_ids) - 1]


def test_causal_rejects_prompt_tokens_after_the_target(load_tiny):
    tok = load_tiny("gpt2").tokenizer
    with pytest.raises(TemplateError, match="invisible to a causal LM"):
        Template.parse((3, 3, 3)).render(tok, {"sub": "x"}, causal=True)


def test_truncation_shortens_only_shortenable_parts(load_tiny):
    tok = load_tiny("bert").tokenizer
    t = Template.parse("{passage:shorten} . [P*2] Question: {question} ? [MASK] .")
    passage = " ".join(["Paris is the capital of France"] * 20)
    full = t.render(tok, {"passage": passage, "question": "Is Paris in France"}, causal=False)
    r = t.render(tok, {"passage": passage, "question": "Is Paris in France"}, causal=False, max_length=30)
    assert len(r.input_ids) == 30 and r.truncated == len(full.input_ids) - 30
    assert r.input_ids[-(len(full.input_ids) - full.target_positions[0]):] == full.input_ids[full.target_positions[0]:]
    assert len(r.prompt_positions) == 2 and r.input_ids[r.target_positions[0]] == tok.mask_token_id
    with pytest.raises(TemplateError, match="no shortenable text is left"):
        t.render(tok, {"passage": passage, "question": "Is Paris in France"}, causal=False, max_length=8)


def test_separator_starts_second_segment(load_tiny):
    tok = load_tiny("bert").tokenizer
    r = Template.parse("{premise} [SEP] {hypothesis} ? [P] answer: [MASK]").render(
        tok, {"premise": "It rains", "hypothesis": "It is wet"}, causal=False)
    sep = r.input_ids.index(tok.sep_token_id)
    assert set(r.token_type_ids[: sep + 1]) == {0} and set(r.token_type_ids[sep + 1 :]) == {1}


def test_missing_slot_value_is_named(load_tiny):
    tok = load_tiny("bert").tokenizer
    with pytest.raises(TemplateError, match="no value for slot \\{sub\\}"):
        Template.parse("{sub} [MASK]").render(tok, {"obj": "x"}, causal=False)
