"""`repro.results.load`: every committed result as one tidy DataFrame whose numbers are the files' own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import repro.results
from repro.report.frame import COLUMNS, LAMA_ALL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frame():
    return repro.results.load(ROOT / "results")


def test_columns_and_one_row_per_number(frame):
    assert tuple(frame.columns) == COLUMNS
    assert set(frame.benchmark) == {"lama", "superglue"}
    assert not frame.duplicated(["path", "task", "seed", "metric"]).any()


def test_superglue_rows_are_the_files_seeds(frame):
    path = ROOT / "results/superglue/fewshot/smollm2-135m/ptuning/cb.json"
    data = json.loads(path.read_text())
    rows = frame[(frame.benchmark == "superglue") & (frame.setting == "fewshot") & (frame.method == "ptuning")
                 & (frame.task == "cb") & (frame.backbone == "smollm2-135m")  # gemma3-270m has its own CB rows
                 & (frame.preset == "cpu")]  # and cpu-long its own (ptuning-cpu-long/cb.json)
    assert sorted(rows.seed.unique()) == sorted(int(s) for s in data["seeds"])
    for seed, metrics in data["seeds"].items():
        for metric, value in metrics.items():
            assert rows[(rows.seed == int(seed)) & (rows.metric == metric)].value.item() == value
    assert rows.groupby("metric").value.mean().to_dict() == pytest.approx(data["mean"])
    assert set(rows.commit) == {data["git_commit"]}
    longer = frame[frame.path == "results/superglue/fewshot/smollm2-135m/ptuning-cpu-long/cb.json"]
    assert set(longer.preset) == {"cpu-long"} and set(longer.method) == {"ptuning"}  # a preset's folder, its rows


def test_lama_rows_are_relations_and_the_two_averages(frame):
    data = json.loads((ROOT / "results/lama/smollm2-135m/ptuning-29k/summary.json").read_text())
    rows = frame[frame.path == "results/lama/smollm2-135m/ptuning-29k/summary.json"]  # not the results/spread/ reruns
    assert set(frame[frame.path.str.startswith("results/spread/")].method) == {"mp", "ptuning"}
    relations = rows[rows.task != LAMA_ALL]
    seeds = [int(s) for s in data["seeds"]]
    assert len(relations) == data["n_relations"] * len(seeds)  # one row per relation and seed
    for seed in seeds:
        mine = relations[relations.seed == seed]
        assert mine.value.mean() == pytest.approx(data["seeds"][str(seed)]["macro_p_at_1"])
        averages = rows[(rows.task == LAMA_ALL) & (rows.seed == seed)].set_index("metric").value
        assert averages.to_dict() == data["seeds"][str(seed)]
    assert relations.groupby("seed").value.mean().mean() == pytest.approx(data["macro_p_at_1"])
    assert set(rows.fidelity) == {data["config"].get("fidelity") or "suite"}
    assert json.loads(rows.fidelity_choices.iloc[0]) == data["config"]["fidelity_choices"]


def test_an_unreadable_file_is_left_out_not_fatal(tmp_path):
    good = ROOT / "results/superglue/fewshot/smollm2-135m/mp/cb.json"
    target = tmp_path / "superglue/fewshot/smollm2-135m/mp"
    target.mkdir(parents=True)
    (target / "cb.json").write_text(good.read_text())
    (target / "rte.json").write_text("{ not json")
    frame = repro.results.load(tmp_path)
    assert set(frame.task) == {"cb"} and len(frame) == 2  # acc and f1_macro of MP's one run
