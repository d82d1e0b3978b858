"""SuperGLUE task adapters on real lines of ../shared/data: fields, labels, patterns rendered token by token on a
tiny masked and a tiny causal tokenizer, truncation, metrics on hand-made predictions, and data errors."""

from __future__ import annotations

import json

import pytest

from repro.errors import ConfigError, DataError
from repro.core.template import Template, TemplateError, special_token_frame
from repro.experiment.superglue import eval_subset
from repro.tasks.base import Example, prompt_length_variants, slots_after_target
from repro.tasks.registry import get_task

CLASSIFICATION = ("boolq", "cb", "rte", "wic", "multirc", "axb", "axg")
P, M, S = "<P>", "<M>", "<S>"  # prompt token, target, separator in the expected piece lists


def first_row(shared_data, task):
    path = shared_data / task.files().eval
    return json.loads(path.read_text(encoding="utf-8").splitlines()[0]), path


# The paper's P-tuning patterns and PET's pattern 0 written out as pieces: literal text (with its spaces),
# slot values, P (prompt token), M (target), S ([SEP]).
def expected_pieces(name: str, style: str, v: dict[str, str]) -> list[str]:
    if name in ("rte", "axb", "axg"):
        if style == "ptuning":
            return [v["premise"], " Question:", " " + v["hypothesis_bare"], " ?", P, " Answer:", M, " ."]
        return [v["premise"], " Question:", " " + v["hypothesis_bare"], " ? Answer:", M, " ."]  # anchors
    if name == "cb":
        if style == "ptuning":
            return [v["premise"], S, " " + v["hypothesis"], " ?", P, " answer:", M]
        return [v["premise"], S, " " + v["hypothesis"], " ? answer:", M]
    if name == "boolq":
        prompt = [P] if style == "ptuning" else []
        tail = [" Question:", " " + v["question"], " ? Answer:", M, " ."]
        return [v["passage"], " ."] + prompt + tail
    if name == "wic":
        if style == "ptuning":
            return [v["sentence1"], S, " " + v["sentence2"], P, " *", v["word"], "* ?", M]
        return ['"', v["sentence1"], '" / "', v["sentence2"], '" Similar sense of "', v["word"], '"?', M, " ."]
    if name == "multirc":
        prompt = [P] if style == "ptuning" else []
        return [v["passage"], " . Question:", " " + v["question"], " ? Is it", " " + v["answer"], " ?"] + prompt + [M, " ."]
    raise AssertionError(name)


def expected_render(tok, pieces: list[str], *, causal: bool):
    frame = special_token_frame(tok, causal=causal)
    ids, prompts, targets = list(frame.prefix), [], []
    for piece in pieces:
        if piece == M:
            if causal:
                targets.append(len(ids) - 1)
                return ids, prompts, targets  # a causal LM sees nothing after its target
            targets.append(len(ids))
            ids.append(tok.mask_token_id)
        elif piece == P:
            prompts.append(len(ids))
            ids.append(frame.placeholder_id)
        elif piece == S:
            ids.append(frame.sep_id)
        else:
            ids.extend(tok(piece, add_special_tokens=False)["input_ids"])
    return ids + list(frame.suffix), prompts, targets


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_adapter_reads_the_first_real_line(shared_data, name):
    task = get_task(name)
    row, path = first_row(shared_data, task)
    examples = task.example(row, f"{path}:1")
    ex = examples[0]
    assert ex.uid.startswith(f"{path}:1")
    if name == "multirc":
        q, a = row["passage"]["questions"][0], row["passage"]["questions"][0]["answers"][0]
        assert len(examples) == sum(len(q["answers"]) for q in row["passage"]["questions"])
        assert ex.values == {"passage": row["passage"]["text"], "question": q["question"], "answer": a["text"]}
        assert ex.label == a["label"] and ex.group == f"{row['idx']}-{q['idx']}"
    elif name == "axb":
        assert ex.values["premise"] == row["sentence1"] and ex.values["hypothesis"] == row["sentence2"]
        assert ex.label == row["label"]
    elif name == "wic":
        marked = "*" + row["word"] + " *"  # WicPVP's marker, as one part (pattern_text=authors)
        assert ex.values == {"word": row["word"], "sentence1": row["sentence1"], "sentence2": row["sentence2"],
                             "marked_word": marked, "marked_question": marked + "?",
                             "sense_question": '" Similar sense of "' + row["word"] + '"?'}  # PET's pattern 0 part
    else:
        assert ex.label == row["label"]
    assert set(task.verbalizer) == set(task.labels) and task.labels


def test_label_sets_and_verbalizers_follow_pet():
    assert get_task("boolq").verbalizer == {False: "No", True: "Yes"}
    assert get_task("cb").verbalizer == {"contradiction": "No", "entailment": "Yes", "neutral": "Maybe"}
    assert get_task("rte").verbalizer == {"not_entailment": "No", "entailment": "Yes"}
    assert get_task("wic").verbalizer == {False: "No", True: "Yes"}
    assert get_task("multirc").verbalizer == {0: "No", 1: "Yes"}
    assert get_task("axb").verbalizer == get_task("axg").verbalizer == get_task("rte").verbalizer


def test_multirc_question_ids_are_unique_across_passages(shared_data):
    task = get_task("multirc")
    examples = task.read(shared_data / task.files().eval)
    assert len(examples) == 4848
    per_passage = {}
    for ex in examples:
        per_passage.setdefault(ex.group, set()).add(ex.uid.split("#")[0])
    assert all(len(lines) == 1 for lines in per_passage.values())  # no id shared by two passages
    assert len(per_passage) == 953


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("tiny", ["bert", "gpt2"])
def test_paper_and_manual_patterns_render_token_by_token(shared_data, load_tiny, name, tiny):
    backbone = load_tiny(tiny)
    tok, causal = backbone.tokenizer, backbone.is_causal
    task = get_task(name)
    row, path = first_row(shared_data, task)
    ex = task.example(row, f"{path}:1")[0]
    for style in ("ptuning", "manual"):
        variant = task.default_variant(style, causal=causal) if style == "manual" else "paper"
        if style == "manual" and name in ("rte", "cb", "axb", "axg") and not causal:
            variant = "anchors"  # PET's pattern 0 is checked separately below
        rendered = task.template(style, variant).render(tok, ex.values, causal=causal)
        ids, prompts, targets = expected_render(tok, expected_pieces(name, style, ex.values), causal=causal)
        assert rendered.input_ids == ids, (name, style, tok.convert_ids_to_tokens(rendered.input_ids))
        assert rendered.prompt_positions == prompts and rendered.target_positions == targets
    if causal:  # byte-level BPE decodes back to the text: the pattern read as a person reads it
        if name == "rte":
            text = tok.decode(task.template("ptuning").render(tok, ex.values, causal=True).input_ids)
            assert text == f"{ex.values['premise']} Question: {ex.values['hypothesis_bare']} ?<|endoftext|> Answer:"


def test_pet_pattern_0_of_rte_for_masked_lms(shared_data, load_tiny):
    tok = load_tiny("roberta").tokenizer
    task = get_task("rte")
    row, _ = first_row(shared_data, task)
    ex = task.example(row, "val:1")[0]
    assert ex.values["hypothesis_bare"] == row["hypothesis"].rstrip(".!?")
    rendered = task.template("manual", "pet").render(tok, ex.values, causal=False)
    pieces = ['"', ex.values["hypothesis_bare"], '" ?', S, M, ', "', ex.values["premise"], '"']
    ids, _, targets = expected_render(tok, pieces, causal=False)
    assert rendered.input_ids == ids and rendered.target_positions == targets


def test_causal_backbones_default_to_a_pattern_they_can_see():
    for name in ("rte", "cb", "axb", "axg"):
        task = get_task(name)
        assert slots_after_target(task.template("manual", "pet")) == ("premise",)
        assert task.default_variant("manual", causal=False) == "pet"
        assert task.default_variant("manual", causal=True) == "anchors"
    for name in CLASSIFICATION:
        assert not slots_after_target(get_task(name).template("ptuning", "paper"))


def test_prompt_length_variants_scale_every_run():
    variants = prompt_length_variants("[P] {x} [P*3] [MASK]")
    assert variants == {"p2": "[P*2] {x} [P*6] [MASK]", "p4": "[P*4] {x} [P*12] [MASK]"}
    assert Template.parse(get_task("wic").pattern("ptuning", "p4")).num_prompt_tokens == 4
    with pytest.raises(ConfigError, match="no prompt token"):
        prompt_length_variants("{x} [MASK]")


@pytest.mark.parametrize("tiny", ["bert", "gpt2"])
def test_truncation_cuts_the_passage_and_keeps_prompt_question_and_mask(shared_data, load_tiny, tiny):
    backbone = load_tiny(tiny)
    tok, causal = backbone.tokenizer, backbone.is_causal
    for name in ("boolq", "multirc"):
        task = get_task(name)
        ex = task.read(shared_data / task.files().fewshot_train)[0]
        template = task.template("ptuning", "p4")
        full = template.render(tok, ex.values, causal=causal)
        limit = len(full.input_ids) - len(tok(ex.values["passage"], add_special_tokens=False)["input_ids"]) // 2
        cut = template.render(tok, ex.values, causal=causal, max_length=limit)
        assert len(cut.input_ids) == limit and cut.truncated == len(full.input_ids) - limit
        assert len(cut.prompt_positions) == 4 and len(cut.target_positions) == 1
        if not causal:
            assert cut.input_ids[cut.target_positions[0]] == tok.mask_token_id
        question = tok(" " + ex.values["question"], add_special_tokens=False)["input_ids"]
        ids = cut.input_ids
        assert any(ids[i:i + len(question)] == question for i in range(len(ids)))  # the question is intact

def test_truncation_that_cannot_fit_names_the_pattern(shared_data, load_tiny):
    tok = load_tiny("bert").tokenizer
    task = get_task("wic")
    ex = task.read(shared_data / task.files().fewshot_train)[0]
    with pytest.raises(TemplateError, match="no shortenable text is left"):
        task.template("ptuning", "p4").render(tok, ex.values, causal=False, max_length=8)


# ------------------------------------------------------------------------------------------------ metrics
def _examples(labels, groups=None):
    groups = groups or [None] * len(labels)
    return [Example(f"x:{i}", {}, y, group=g) for i, (y, g) in enumerate(zip(labels, groups))]


def test_accuracy_tasks_score_hand_made_predictions():
    for name, golds, preds in (("boolq", [True, False, True, True], [True, True, True, False]),
                               ("rte", ["entailment", "not_entailment"], ["entailment", "entailment"]),
                               ("wic", [False, True, True, False], [False, True, True, False])):
        expected = 100.0 * sum(p == g for p, g in zip(preds, golds)) / len(golds)
        assert get_task(name).score(_examples(golds), preds) == {"acc": pytest.approx(expected)}


def test_cb_accuracy_and_macro_f1_by_hand():
    golds = ["entailment", "entailment", "contradiction", "neutral"]
    preds = ["entailment", "contradiction", "contradiction", "entailment"]
    # entailment P=1/2 R=1/2 F=1/2; contradiction P=1/2 R=1 F=2/3; neutral F=0 -> macro (1/2+2/3+0)/3
    scores = get_task("cb").score(_examples(golds), preds)
    assert scores["acc"] == pytest.approx(50.0)
    assert scores["f1_macro"] == pytest.approx(100 * (0.5 + 2 / 3) / 3)
    assert get_task("cb").selection_score(scores) == pytest.approx((scores["acc"] + scores["f1_macro"]) / 2)


def test_multirc_em_and_f1a_by_hand():
    golds = [1, 0, 1, 0, 0, 1]
    groups = ["0-0", "0-0", "0-1", "0-1", "1-0", "1-0"]
    preds = [1, 0, 1, 1, 0, 1]  # question 0-1 has one option wrong
    scores = get_task("multirc").score(_examples(golds, groups), preds)
    assert scores["em"] == pytest.approx(100 * 2 / 3)
    assert scores["f1a"] == pytest.approx(100 * 2 * 0.75 * 1.0 / 1.75)  # P = 3/4, R = 3/3


def test_axb_matthews_and_axg_parity_by_hand(shared_data):
    golds = ["entailment", "entailment", "not_entailment", "not_entailment"]
    preds = ["entailment", "not_entailment", "not_entailment", "not_entailment"]
    # TP=1 FN=1 TN=2 FP=0: (1*2 - 0*1) / sqrt(1*2*3*2)
    assert get_task("axb").score(_examples(golds), preds)["mcc"] == pytest.approx(100 * 2 / 12 ** 0.5)
    axg = get_task("axg")
    examples = axg.read(shared_data / axg.files().eval)[:4]
    assert examples[0].group == examples[1].group != examples[2].group == examples[3].group
    scores = axg.score(examples, ["entailment", "entailment", "entailment", "not_entailment"])
    assert scores["gender_parity"] == pytest.approx(50.0)
    assert scores["acc"] == pytest.approx(100 * sum(
        p == e.label for p, e in zip(["entailment", "entailment", "entailment", "not_entailment"], examples)) / 4)


def test_eval_subset_keeps_whole_groups_and_is_fixed(shared_data):
    task = get_task("multirc")
    examples = task.read(shared_data / task.files().eval)
    subset = eval_subset(examples, 200)
    assert subset == eval_subset(examples, 200) and 150 < len(subset) <= 200
    groups = {ex.group for ex in subset}
    assert sum(ex.group in groups for ex in examples) == len(subset)  # every chosen question is complete
    assert [examples.index(ex) for ex in subset] == sorted(examples.index(ex) for ex in subset)
    assert eval_subset(examples, None) is examples


# ------------------------------------------------------------------------------------------------ errors
def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown task 'bolq'; valid: boolq, cb, wic"):
        get_task("bolq")


def test_corrupt_lines_name_file_line_and_field(tmp_path, shared_data):
    task = get_task("cb")
    good = (shared_data / task.files().eval).read_text(encoding="utf-8").splitlines()[:2]
    path = tmp_path / "val.jsonl"
    path.write_text(good[0] + "\n" + '{"premise": "a", "hypothesis": "b", "label": "entailment"\n')
    with pytest.raises(DataError, match=r"val.jsonl:2: invalid JSON"):
        task.read(path)
    path.write_text(good[0] + "\n" + '{"premise": "a", "hypothesis": "b"}\n')
    with pytest.raises(DataError, match=r"val.jsonl:2: missing field 'label'"):
        task.read(path)
    path.write_text('{"premise": "a", "hypothesis": "b", "label": "maybe"}\n')
    with pytest.raises(DataError, match=r"val.jsonl:1: field 'label' is 'maybe'; valid: 'contradiction'") as err:
        task.read(path)
    assert str(err.value).count("val.jsonl") == 1
    multirc = get_task("multirc")
    path.write_text('{"idx": 0, "passage": {"text": "t", "questions": [{"idx": 0, "question": "q", '
                    '"answers": [{"idx": 0, "text": "a"}]}]}}\n')
    with pytest.raises(DataError, match=r"val.jsonl:1: missing field 'label' in passage.questions\[0\].answers\[0\]"):
        multirc.read(path)
