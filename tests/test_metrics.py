"""Every metric on hand-made predictions against values computed by hand."""

from __future__ import annotations

import json

import pytest

from repro import metrics as m


def test_p_at_1():
    assert m.p_at_1([5, 7, 9, 1], [5, 7, 0, 2]) == 50.0
    assert m.p_at_1([3], [3]) == 100.0
    with pytest.raises(ValueError, match="2 predictions but 3 gold"):
        m.p_at_1([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no examples"):
        m.p_at_1([], [])


def test_lama_macro_and_micro_differ():
    # P1: 9/10 = 90%, P2: 1/90 (~1.11%), P3: no kept fact (excluded from both)
    summary = m.lama_summary({"P1": (9, 10), "P2": (1, 90), "P3": (0, 0)})
    assert summary["macro_p_at_1"] == pytest.approx((90.0 + 100 / 90) / 2)  # 45.555...
    assert summary["micro_p_at_1"] == pytest.approx(10.0)  # 10 of 100 facts
    assert summary["excluded"] == ["P3"] and summary["num_relations"] == 2 and summary["num_facts"] == 100
    with pytest.raises(ValueError, match="undefined"):
        m.lama_summary({"P3": (0, 0)})
    with pytest.raises(ValueError, match="P9"):
        m.lama_summary({"P9": (5, 4)})


def test_accuracy_and_cb_macro_f1():
    assert m.accuracy(["a", "b", "b", "a"], ["a", "b", "a", "a"]) == 75.0
    golds = ["entailment", "entailment", "contradiction", "neutral", "neutral", "entailment"]
    preds = ["entailment", "contradiction", "contradiction", "neutral", "entailment", "entailment"]
    # entailment: tp 2, fp 1, fn 1 -> F1 2/3; contradiction: tp 1, fp 1, fn 0 -> 2/3; neutral: tp 1, fp 0, fn 1 -> 2/3
    assert m.f1_macro(preds, golds) == pytest.approx(200 / 3)
    # a label only predicted (never gold) still counts as a class with F1 0, as sklearn's macro does
    assert m.f1_macro(["x", "y"], ["x", "x"]) == pytest.approx((2 / 3 + 0) / 2 * 100)


def test_multirc_em_and_f1a():
    qids = [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 0)]  # (passage, question): question idx restarts per passage
    golds = [1, 0, 1, 1, 0, 1]
    preds = [1, 0, 1, 0, 0, 1]
    scores = m.multirc_em_f1a(qids, preds, golds)
    assert scores["em"] == pytest.approx(200 / 3)  # questions (0,0) and (1,0) all right, (0,1) not
    # positives: tp 3, fp 0, fn 1 -> P 1, R 3/4, F1 6/7
    assert scores["f1a"] == pytest.approx(600 / 7)
    assert m.multirc_em_f1a(qids, [True, False, True, True, False, True], golds)["em"] == 100.0


def test_matthews():
    # tp 2, tn 1, fp 1, fn 0: (2*1 - 1*0) / sqrt(3*2*2*1) = 2/sqrt(12)
    assert m.matthews([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / 12 ** 0.5 * 100)
    assert m.matthews(["entailment", "not_entailment"], ["entailment", "not_entailment"]) == 100.0


def test_gender_parity_on_hand_made_pairs():
    keys = ["The nurse said she was tired .", "The nurse said she was tired .",
            "The surgeon said he would wait .", "The surgeon said he would wait .",
            "The cook said they were late .", "The cook said they were late ."]
    preds = ["entailment", "entailment", "entailment", "not_entailment", "not_entailment", "not_entailment"]
    assert m.gender_parity(keys, preds) == pytest.approx(100 * 2 / 3)  # pairs 1 and 3 agree, pair 2 does not
    assert m.gender_parity(keys[:2], preds[2:4]) == 0.0
    with pytest.raises(ValueError, match="not a pair"):
        m.gender_parity(keys[1:5], preds[:4])
    with pytest.raises(ValueError, match="even"):
        m.gender_parity(keys[:3], preds[:3])
    with pytest.raises(ValueError, match="pair keys for"):
        m.gender_parity(keys, preds[:4])


def test_gender_parity_on_real_axg_pairs(shared_data):
    rows = [json.loads(line) for line in (shared_data / "superglue/AX-g/AX-g.jsonl").read_text().splitlines() if line]
    keys = [r["hypothesis"] for r in rows[:8]]
    preds = ["entailment", "entailment", "entailment", "not_entailment",
             "not_entailment", "not_entailment", "not_entailment", "not_entailment"]
    assert m.gender_parity(keys, preds) == 75.0  # pairs 1, 3, 4 agree; pair 2 does not
    assert len({r["pair_id"] for r in rows}) == len(rows)  # why pair_id cannot group the pairs
    with pytest.raises(ValueError, match="not a pair"):
        m.gender_parity(keys[1:5], preds[:4])
    with pytest.raises(ValueError, match="even"):
        m.gender_parity(keys[:3], preds[:3])


def test_record_normalisation_and_max_over_golds():
    assert m.normalize_answer("  The  Eiffel-Tower, Paris! ") == "eiffeltower paris"
    assert m.normalize_answer("An apple a day") == "apple day"
    assert m.record_em_f1("the Barack Obama", ["Obama", "Barack Obama"]) == (100.0, 100.0)
    em, f1 = m.record_em_f1("President Obama", ["Barack Obama", "Michelle"])
    # vs "Barack Obama": 1 common token, P 1/2, R 1/2 -> F1 1/2
    assert em == 0.0 and f1 == pytest.approx(50.0)
    assert m.record_em_f1("Paris", ["London"]) == (0.0, 0.0)
    scores = m.record_scores([("the Barack Obama", ["Barack Obama"]), ("President Obama", ["Barack Obama"])])
    assert scores == {"em": 50.0, "f1": pytest.approx(75.0)}


def test_superglue_avg_averages_cb_and_multirc_first():
    from repro.report.average import superglue_average

    tasks = {
        "BoolQ": {"acc": 80.0}, "CB": {"acc": 90.0, "f1_macro": 70.0}, "WiC": {"acc": 60.0},
        "RTE": {"acc": 70.0}, "MultiRC": {"em": 20.0, "f1a": 60.0}, "WSC": {"acc": 65.0}, "COPA": {"acc": 75.0},
    }
    values = {(t, k): v for t, metrics in tasks.items() for k, v in metrics.items()}
    # (80 + 80 + 60 + 70 + 40 + 65 + 75) / 7
    assert superglue_average(values).value == pytest.approx(470 / 7)
    diagnostics = {**values, ("AX-b", "mcc"): 10.0, ("AX-g", "acc"): 50.0, ("ReCoRD", "em"): 1.0}
    assert superglue_average(diagnostics).value == pytest.approx(470 / 7)
    only_cb = superglue_average({("CB", "acc"): 90.0, ("CB", "f1_macro"): 70.0})
    assert only_cb.value is None and "BoolQ" in only_cb.missing and "CB" not in only_cb.missing
    assert superglue_average({("CB", "acc"): 90.0}, allow_missing=True).value is None  # CB lacks its F1
    assert superglue_average({("CB", "acc"): 90.0, ("CB", "f1_macro"): 70.0}, allow_missing=True).value == 80.0


def test_metric_keys_are_declared_by_the_tasks():
    from repro.tasks.registry import get_task

    keys = {name: tuple(get_task(name).metrics) for name in
            ("cb", "multirc", "axb", "axg", "record", "boolq", "rte", "wic", "wsc", "copa")}
    assert keys["cb"] == ("acc", "f1_macro") and keys["multirc"] == ("em", "f1a")
    assert keys["axb"] == ("mcc",) and keys["axg"] == ("acc", "gender_parity")
    assert keys["record"] == ("em", "f1")
    assert all(keys[t] == ("acc",) for t in ("boolq", "rte", "wic", "wsc", "copa"))


def test_mean_std_is_the_sample_std():
    mean, std = m.mean_std([70.0, 80.0, 90.0])
    assert mean == 80.0 and std == pytest.approx(10.0)  # ddof=1: sqrt(200/2); ddof=0 would give 8.165
    assert m.mean_std([42.0]) == (42.0, 0.0)
    with pytest.raises(ValueError):
        m.mean_std([])
