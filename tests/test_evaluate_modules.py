"""The suite's `evaluate` modules: they load offline from the package, return the hub `super_glue` metric's keys
and values (fractions) on hand-made cases whose answers are worked out by hand below, and agree with the
committed LAMA results (recomputed from each relation's correct/kept counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

evaluate = pytest.importorskip("evaluate")

from repro.evaluate_modules import VERSIONS, describe, load, module_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))


def test_the_hub_documented_examples():
    assert load("super_glue", "copa").compute(predictions=[0, 1], references=[0, 1]) == {"accuracy": 1.0}
    assert load("super_glue", "cb").compute(predictions=[0, 1], references=[0, 1]) == {"accuracy": 1.0, "f1": 1.0}
    record = load("super_glue", "record").compute(
        predictions=[{"idx": {"passage": 0, "query": 0}, "prediction_text": "answer"}],
        references=[{"idx": {"passage": 0, "query": 0}, "answers": ["answer", "another_answer"]}])
    assert record == {"exact_match": 1.0, "f1": 1.0}
    multirc = load("super_glue", "multirc").compute(
        predictions=[{"idx": {"answer": 0, "paragraph": 0, "question": 0}, "prediction": 0},
                     {"idx": {"answer": 1, "paragraph": 2, "question": 3}, "prediction": 1}],
        references=[0, 1])
    assert multirc == {"exact_match": 1.0, "f1_m": 1.0, "f1_a": 1.0}
    assert load("super_glue", "axb").compute(predictions=[0, 1], references=[0, 1]) == {"matthews_correlation": 1.0}


def test_cb_accuracy_and_macro_f1_by_hand():
    # label 0: F1 1; label 1: P 1, R 1/2 -> 2/3; label 2: predicted once, never gold -> 0; macro 5/9
    out = load("super_glue", "cb").compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0])
    assert out["accuracy"] == pytest.approx(0.75) and out["f1"] == pytest.approx(5 / 9)


def test_multirc_by_hand():
    def option(paragraph, question, answer, prediction):
        return {"idx": {"paragraph": paragraph, "question": question, "answer": answer}, "prediction": prediction}

    # question (0, 0) all right: macro-F1 1; question (0, 1): class 0 never predicted -> 0, class 1 P 1/2 R 1 ->
    # 2/3, macro 1/3; f1_m = (1 + 1/3) / 2; EM 1/2; F1 over all options: TP 2, FP 1, FN 0 -> 0.8
    preds = [option(0, 0, 0, 1), option(0, 0, 1, 0), option(0, 1, 0, 1), option(0, 1, 1, 1)]
    out = load("super_glue", "multirc").compute(predictions=preds, references=[1, 0, 0, 1])
    assert out == pytest.approx({"exact_match": 0.5, "f1_m": 2 / 3, "f1_a": 0.8})


def test_record_normalisation_and_max_over_answers():
    refs = [{"idx": {"passage": 0, "query": q}, "answers": answers}
            for q, answers in enumerate((["Eiffel Tower", "Paris"], ["Tower Bridge"], ["Rome"]))]
    preds = [{"idx": {"passage": 0, "query": 0}, "prediction_text": "the Eiffel Tower!"},  # EM 1 after normalising
             {"idx": {"passage": 0, "query": 1}, "prediction_text": "London Bridge"},  # EM 0, F1 1/2
             {"idx": {"passage": 0, "query": 2}, "prediction_text": "Milan"}]  # 0 and 0
    out = load("super_glue", "record").compute(predictions=preds, references=refs)
    assert out == pytest.approx({"exact_match": 1 / 3, "f1": 1.5 / 3})


def test_axb_matthews_and_axg_parity_by_hand():
    # TP 1, FP 1, TN 2, FN 0: (1*2 - 1*0) / sqrt(2 * 1 * 3 * 2)
    out = load("super_glue", "axb").compute(predictions=[1, 1, 0, 0], references=[1, 0, 0, 0])
    assert out["matthews_correlation"] == pytest.approx(2 / 12 ** 0.5)
    axg = load("super_glue", "axg")
    assert axg.compute(predictions=[1, 1, 0, 1], references=[1, 1, 0, 0]) == {"accuracy": 0.75}
    out = axg.compute(predictions=[1, 1, 0, 1], references=[1, 1, 0, 0], pair_keys=["a", "a", "b", "b"])
    assert out == {"accuracy": 0.75, "gender_parity": 0.5}


def test_an_unknown_configuration_names_the_valid_ones():
    with pytest.raises(KeyError, match="valid: boolq, cb"):
        load("super_glue", "nosuchtask")
    with pytest.raises(KeyError, match="valid: super_glue, lama"):
        module_path("glue")


@pytest.mark.parametrize("method", ["mp-29k", "ptuning-29k"])
def test_lama_module_gives_the_committed_summaries(method):
    """Each committed relation file keeps its correct and kept counts: rebuilt as facts, the module's macro and
    micro P@1 are the summary's, seed by seed (a several-seed summary holds each seed's; `seed_folder`)."""
    from repro.experiment.lama import seed_folder

    run = ROOT / "results" / "lama" / "smollm2-135m" / method
    summary = json.loads((run / "summary.json").read_text())
    assert summary["seeds"]
    for seed, expected in summary["seeds"].items():
        preds, golds, relations = [], [], []
        for path in sorted(seed_folder(run, int(seed)).glob("P*.json")):
            record = json.loads(path.read_text())
            if record["relation"] not in summary["relations"] or record["correct"] is None:
                continue  # not in this summary, or not trained (no training file: P-tuning has no number)
            kept, correct = int(record["kept"]), int(record["correct"])
            preds += [1] * correct + [0] * (kept - correct)
            golds += [1] * kept
            relations += [record["relation"]] * kept
        out = load("lama", "default").compute(predictions=preds, references=golds, relations=relations)
        assert out["num_relations"] == summary["n_relations"] and out["num_facts"] == summary["n_facts"]
        assert out["macro_p_at_1"] == pytest.approx(expected["macro_p_at_1"], abs=1e-9)
        assert out["micro_p_at_1"] == pytest.approx(expected["micro_p_at_1"], abs=1e-9)


def test_describe_names_module_and_version():
    assert describe("super_glue", "cb") == {"module": "repro.evaluate_modules.super_glue", "config": "cb",
                                            "version": VERSIONS["super_glue"]}
