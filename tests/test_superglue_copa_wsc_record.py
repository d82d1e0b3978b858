"""COPA, WSC and ReCoRD adapters on real lines of ../shared/data: reading, rendered inputs token by token for a
masked and a causal tokenizer, ReCoRD's EM/F1 and WSC's matching rule by hand, and train-and-evaluate smoke
runs on tiny masked and causal backbones."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from repro.errors import DataError
from repro.methods import get_method
from repro.core.model import PromptedLM
from repro.ptuning import PromptEncoder, PromptEncoderConfig
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.experiment.superglue import run_superglue
from repro.scorers.base import ScorerContext, make_scorer
from repro.core.template import Template, TemplateError, special_token_frame, word_token_ids
from repro.tasks.base import Example
from repro.tasks.copa import Copa
from repro.tasks.record import Record
from repro.tasks.registry import get_task
from repro.tasks.wsc import Wsc, pet_span_match


def ctx_for(task, backbone, style, *, max_length=None, encoder=False) -> ScorerContext:
    model = PromptedLM(backbone)
    variant = task.default_variant(style, causal=backbone.is_causal)
    template = Template.parse(task.pattern(style, variant), masked=not backbone.is_causal)
    if encoder:
        torch.manual_seed(0)
        model.encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=template.num_prompt_tokens,
                                                          token_dim=backbone.hidden_size))
    method = get_method("mp" if style == "manual" else "ptuning", "superglue")
    return ScorerContext(task, method, model, template, variant, max_length or 512, 8, quiet=True)


def tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


def enc(tok, text: str) -> list[str]:
    """The tokenizer's own tokens for one piece of a pattern (no special tokens)."""
    return tokens(tok, tok(text, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------------------------------- reading
def test_registry_names_the_three_adapters():
    assert isinstance(get_task("copa"), Copa) and isinstance(get_task("wsc"), Wsc)
    assert isinstance(get_task("record"), Record)
    assert get_task("copa").metrics == ("acc",) and get_task("record").metrics == ("em", "f1")


def test_copa_reads_choices_as_pet_does_and_mirrors_training_examples(shared_data):
    task = Copa()
    examples = task.read(shared_data / "fewglue" / "COPA" / "dev32.jsonl")
    ex = examples[1]  # {"premise": "I ironed my shirt.", "choice1": "It was clean.", "choice2": "It was wrinkled."}
    assert ex.candidates == ("it was clean", "it was wrinkled") and ex.label == 1
    assert ex.values["premise"] == "I ironed my shirt" and ex.values["connective"] == "because"
    assert examples[0].values["connective"] == "so" and examples[0].values["pet_connective"] == ", so"
    items = task.train_examples(examples[:3])
    assert len(items) == 6
    mirrored = items[4]
    assert mirrored.candidates == ("it was wrinkled", "it was clean") and mirrored.label == 0
    assert (mirrored.values["choice1"], mirrored.values["choice2"]) == ("it was wrinkled", "it was clean")


def test_wsc_marks_the_pronoun_and_repairs_its_index_as_pet(shared_data):
    task = Wsc()
    first = task.read(shared_data / "fewglue" / "WSC" / "dev32.jsonl")[0]
    assert first.values["text"] == (
        "When Mr. Bond , the veterinarian, came to look at the black horse that lay groaning on the grass, he felt "
        "him all over, and shook *his* head; one of his legs was broken.")
    assert first.candidates == ("Mr. Bond",) and first.label is True and first.values["pronoun"] == "his"
    # line 4: the pronoun index points at 'him,"': PET splits it into 'him' and ',"'
    glued = task.read(shared_data / "fewglue" / "WSC" / "train.jsonl")[3]
    assert glued.values["text"].endswith('"Good for *him* ," he said.')
    train_all = task.read(shared_data / "superglue" / "WSC" / "train.jsonl")
    positives = task.train_examples(train_all)
    assert 0 < len(positives) < len(train_all) and all(ex.label is True for ex in positives)


def test_wsc_bad_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps({"text": "He left .", "target": {"span1_text": "Bob", "span2_index": 5,
                                                              "span2_text": "He"}, "label": True}) + "\n")
    with pytest.raises(DataError, match=r"val.jsonl:1: span2_index 5 is outside the text"):
        Wsc().read(path)


def test_record_reads_entities_queries_and_builds_pets_training_items(shared_data):
    task = Record()
    examples = task.read(shared_data / "fewglue" / "ReCoRD" / "dev32.jsonl")
    assert len(examples) == 32
    ex = examples[0]
    assert ex.uid.endswith("dev32.jsonl:1#q19617")
    assert ex.values["query_before"] == "They will sew our lips, but we will chant, 'Long live"
    assert ex.values["query_after"] == ".'"
    assert ex.meta["answers"] == ("Benazir Bhutto", "Bhutto")
    assert ex.candidates[:3] == ("Islamabad", "Pakistan", "CNN") and len(set(ex.candidates)) == len(ex.candidates)
    assert ex.candidates[ex.label] == "Benazir Bhutto"
    assert "@highlight" not in ex.values["passage"] and "\n- " in ex.values["passage"]
    items = task.train_examples(examples)
    first = [it for it in items if it.uid.startswith(ex.uid)]
    assert [it.candidates[0] for it in first] == ["Benazir Bhutto", "Bhutto"]
    for it in items:
        assert it.label == 0 and len(it.candidates) <= 10
        assert it.candidates[0] in it.meta["answers"]
        assert not set(it.candidates[1:]) & set(it.meta["answers"])
    assert task.train_examples(examples) == items  # the negatives' draw is deterministic


# ------------------------------------------------------------------------------------------- rendering
def test_copa_rendered_token_by_token(load_tiny, shared_data):
    ex = Copa().read(shared_data / "fewglue" / "COPA" / "dev32.jsonl")[1]
    bert = load_tiny("bert")
    tok = bert.tokenizer
    ctx = ctx_for(Copa(), bert, "manual")
    scorer = make_scorer(ctx)
    right = scorer.render(ex)[1]
    n = len(enc(tok, " it was wrinkled"))
    expected = (["[CLS]"] + enc(tok, '"') + enc(tok, "it was clean") + enc(tok, '" or "')
                + enc(tok, "it was wrinkled") + enc(tok, '"?') + enc(tok, " I ironed my shirt")
                + enc(tok, " because") + ["[MASK]"] * n + enc(tok, ".") + ["[SEP]"])
    assert tokens(tok, right.input_ids) == expected
    assert tokens(tok, [right.input_ids[p] for p in right.target_positions]) == ["[MASK]"] * n

    gpt2 = load_tiny("gpt2")
    tok = gpt2.tokenizer
    ctx = ctx_for(Copa(), gpt2, "ptuning", encoder=True)
    right = make_scorer(ctx).render(ex)[1]
    answer = enc(tok, " it was wrinkled")
    placeholder = tok.convert_ids_to_tokens(special_token_frame(tok, causal=True).placeholder_id)
    head = (enc(tok, "it was clean") + enc(tok, " or") + enc(tok, " it was wrinkled") + enc(tok, " ?")
            + enc(tok, " I ironed my shirt") + enc(tok, " because"))
    assert tokens(tok, right.input_ids) == head + [placeholder] + answer[:-1]  # the final " ." is dropped
    assert right.prompt_positions == [len(head)]
    assert right.target_positions == list(range(len(head), len(head) + len(answer)))
    assert tokens(tok, right.target_ids) == answer


def test_wsc_rendered_token_by_token(load_tiny, shared_data):
    ex = Wsc().read(shared_data / "fewglue" / "WSC" / "dev32.jsonl")[0]
    bert = load_tiny("bert")
    tok = bert.tokenizer
    ctx = ctx_for(Wsc(), bert, "manual")
    scorer = make_scorer(ctx)
    (item,) = scorer.train_items([ex])
    n = len(enc(tok, " Mr. Bond"))
    expected = (["[CLS]"] + enc(tok, ex.values["text"]) + enc(tok, " The pronoun '*") + enc(tok, "his")
                + enc(tok, "*' refers to") + ["[MASK]"] * n + enc(tok, ".") + ["[SEP]"])
    assert tokens(tok, item.input_ids) == expected
    assert tokens(tok, item.target_ids) == enc(tok, " Mr. Bond")

    llama = load_tiny("llama")
    tok = llama.tokenizer
    ctx = ctx_for(Wsc(), llama, "ptuning", encoder=True)
    (item,) = make_scorer(ctx).train_items([ex])
    p = tok.convert_ids_to_tokens(special_token_frame(tok, causal=True).placeholder_id)
    span = enc(tok, " Mr. Bond")
    text = enc(tok, " " + ex.values["text"])  # "[P] {text}": the text follows a space
    head = [tok.bos_token, p] + text + [p] + enc(tok, " pronoun '*") + enc(tok, "his") + enc(tok, "*' refers to")
    assert tokens(tok, item.input_ids) == head + span[:-1]
    assert item.prompt_positions == [1, 2 + len(text)]
    assert item.target_positions[0] == len(head) - 1


def test_record_rendered_token_by_token(load_tiny, shared_data):
    ex = Record().read(shared_data / "fewglue" / "ReCoRD" / "dev32.jsonl")[0]
    gold = ex.label
    bert = load_tiny("bert")
    tok = bert.tokenizer
    rendered = make_scorer(ctx_for(Record(), bert, "manual")).render(ex)[gold]
    n = len(enc(tok, " Benazir Bhutto"))
    expected = (["[CLS]"] + enc(tok, ex.values["passage"]) + enc(tok, " " + ex.values["query_before"])
                + ["[MASK]"] * n + enc(tok, ".'") + ["[SEP]"])
    assert tokens(tok, rendered.input_ids) == expected

    gpt2 = load_tiny("gpt2")
    tok = gpt2.tokenizer
    ctx = ctx_for(Record(), gpt2, "ptuning", encoder=True)
    assert ctx.pattern == "ours-prefix"  # the causal LM's variant: nothing after [MASK]
    rendered = make_scorer(ctx).render(ex)[gold]
    p = tok.convert_ids_to_tokens(special_token_frame(tok, causal=True).placeholder_id)
    head = enc(tok, ex.values["passage"]) + [p] + enc(tok, " " + ex.values["query_before"])
    answer = enc(tok, " Benazir Bhutto")
    assert tokens(tok, rendered.input_ids) == head + answer[:-1]
    assert rendered.target_positions[0] == len(head) - 1


def test_record_candidate_without_room_fails_naming_query_and_candidate(load_tiny, shared_data):
    """Passage and query fill 20 tokens before any candidate: even an empty passage leaves the query, and the
    longest candidate (rendered first) cannot fit."""
    ex = Record().read(shared_data / "fewglue" / "ReCoRD" / "dev32.jsonl")[0]
    bert = load_tiny("bert")
    scorer = make_scorer(ctx_for(Record(), bert, "manual", max_length=20))
    longest = max(ex.candidates, key=lambda c: len(word_token_ids(bert.tokenizer, c, space_before=True)))
    with pytest.raises(TemplateError) as err:
        scorer.render(ex)
    message = str(err.value)
    assert "dev32.jsonl:1#q19617" in message and f"candidate {longest!r}" in message
    assert "max_length is 20" in message and "no shortenable text is left" in message


# ------------------------------------------------------------------------------------------- metrics by hand
def _query(candidates, answers):
    return Example(uid="q", values={}, label=0, candidates=tuple(candidates), meta={"answers": tuple(answers)})


def test_record_em_f1_normalise_and_take_the_best_gold():
    task = Record()
    q = _query(["the Eiffel Tower", "Paris", "Tower of London"], ["Eiffel Tower", "The Eiffel tower!"])
    assert task.score([q], [0]) == {"em": 100.0, "f1": 100.0}  # case, article and punctuation normalised
    assert task.score([q], [1]) == {"em": 0.0, "f1": 0.0}
    # "tower of london" vs "eiffel tower": 1 common token, P 1/3, R 1/2 -> F1 0.4
    assert task.score([q], [2]) == pytest.approx({"em": 0.0, "f1": 40.0})
    q2 = _query(q.candidates, ["Eiffel Tower", "London"])  # vs "london": P 1/3, R 1 -> F1 0.5, the max
    assert task.score([q2], [2]) == pytest.approx({"em": 0.0, "f1": 50.0})
    assert task.score([q, q2], [0, 2]) == pytest.approx({"em": 50.0, "f1": 75.0})


@pytest.mark.parametrize("predicted, candidate, match", [
    ("Mr. Bond", "Mr. Bond", True),
    ("bond", "Mr. Bond", True),  # the prediction's words are a subset
    ("the vet Mr Bond", "Mr. Bond", True),  # the candidate's words are a subset
    ("The table.", "the table", True),  # case and punctuation
    ("the horse", "Mr. Bond", False),
    ("Bond's", "Mr. Bond", False),  # split at non-letters: "s" is not a word of the candidate
    ("", "anything", True),  # PET's rule: an empty prediction is a subset of every candidate
])
def test_wsc_pet_rule(predicted, candidate, match):
    assert pet_span_match(predicted, candidate) is match


def test_wsc_accuracy_compares_the_judged_prediction_with_the_label():
    pos = Example("a", {}, True, ("the table",))
    neg = Example("b", {}, False, ("the table",))
    assert Wsc().score([pos, neg], ["table", "table"]) == {"acc": 50.0}
    assert Wsc().score([pos, neg], ["table", "the chair"]) == {"acc": 100.0}


# ------------------------------------------------------------------------------------------- smoke runs
def _tiny_config(task: str, method: str) -> SuperGLUEConfig:
    options = {"normalize": "mean", "loss": "hinge"} if task == "copa" else {}
    config = SuperGLUEConfig(task=task, method=method, preset="cpu", seeds=[42], max_train=4, max_dev=4, max_eval=4,
                             max_length=160, dtype="float32", checkpoint="never", scorer_options=options)
    config.train = replace(config.train, max_steps=2, eval_every_steps=2, batch_size=4)
    return config


@pytest.mark.parametrize("task, method, name", [("copa", "ptuning", "albert"), ("wsc", "ptuning", "llama")])
def test_engine_trains_and_evaluates_copa_and_wsc(load_tiny, shared_data, tmp_path, task, method, name):
    results = run_superglue(_tiny_config(task, method), root=shared_data, results_root=tmp_path / "results",
                            runs_root=tmp_path / "runs", backbone=load_tiny(name), quiet=True)
    result = results[task]
    path = tmp_path / "results" / "superglue" / "fewshot" / name / method / f"{task}.json"
    assert json.loads(path.read_text())["mean"] == result["mean"]
    assert 0.0 <= result["mean"]["acc"] <= 100.0 and result["n_eval"] == 4
    assert result["training"]["42"]["steps"] == 2
    assert all(note in result["notes"] for note in get_task(task).notes)
    if task == "copa":
        assert result["training"]["42"]["n_train"] == 8  # 4 examples and their mirrored copies
        assert (result["scoring"]["normalize"], result["scoring"]["candidate_loss"]) == ("mean", "hinge")


@pytest.mark.parametrize("method, name", [("mp-ft", "bert"), ("ptuning", "gpt2")])
def test_engine_trains_record_and_evaluates_on_dev32_when_val_is_absent(load_tiny, shared_data, tmp_path, method,
                                                                        name):
    """The mirror has no ReCoRD val.jsonl: the run evaluates on dev32, marked partial with a note."""
    config = _tiny_config("record", method)
    config.max_eval = 2
    results = run_superglue(config, root=shared_data, results_root=tmp_path / "results", runs_root=tmp_path / "runs",
                            backbone=load_tiny(name), quiet=True)
    result = results["record"]
    assert set(result["mean"]) == {"em", "f1"} and all(0.0 <= v <= 100.0 for v in result["mean"].values())
    assert result["eval_file"] == "fewglue/ReCoRD/dev32.jsonl" and result["partial"] is True
    assert any("superglue/ReCoRD/val.jsonl is absent" in note for note in result["notes"])
    assert result["training"]["42"]["steps"] == 2 and result["training"]["42"]["n_train"] >= 4
    assert result["config"]["pattern"] == ("ours-prefix" if name == "gpt2" else "pet")
