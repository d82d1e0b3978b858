"""Extending the suite: a new task is one file plus one registry line, a new method one entry.

Here the task's file *is* this test file: `ToySentiment` is declared below, registered from here, run through
few-shot training, evaluation, its result file and `python -m repro report`, and its rows and columns are
looked for in the report's tables. Nothing else in the project is edited for it. The same for a method.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import pytest

from repro import metrics
from repro.cli import main
from repro.experiment.lama import LamaConfig, run_lama
from repro.experiment.superglue import run_superglue
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import Method, Style, register_method, unregister_method
from repro.tasks.base import ClassificationTask, Example, TaskFiles, label_index
from repro.tasks.registry import register_task, unregister_task

POSITIVE = ["the film was a joy", "a warm and happy story", "I loved the music", "what a great day",
            "the food was good", "she smiled all evening", "a bright and kind book", "we had fun"]
NEGATIVE = ["the film was a bore", "a cold and sad story", "I hated the noise", "what a bad day",
            "the food was awful", "he cried all evening", "a dull and mean book", "we were bored"]


class ToySentiment(ClassificationTask):
    """A made-up sentiment task: is the sentence positive? Verbalized Yes / No."""

    name = "toy"
    folder = "Toy"
    paper_name = "Toy"
    metrics = ("acc",)
    in_paper_tables = False  # an extra column of the SuperGLUE tables
    in_avg = False
    required_fields = ("sentence", "label")
    labels = (False, True)
    verbalizer = {False: "No", True: "Yes"}
    manual_patterns = {"plain": "{sentence} . Happy ? [MASK] ."}
    ptuning_patterns = {"paper": "{sentence} . [P] Happy ? [MASK] ."}
    classifier_pattern = "{sentence}"

    def files(self) -> TaskFiles:
        return TaskFiles(fewshot_train="toy/train.jsonl", fewshot_dev="toy/dev32.jsonl", eval="toy/val.jsonl",
                         supervised_train="toy/train.jsonl")

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        return [Example(uid, {"sentence": str(row["sentence"])}, label_index(self, row.get("label"), uid))]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return {"acc": metrics.accuracy(predictions, self.golds(examples))}


@pytest.fixture
def toy_task():
    register_task(ToySentiment)
    yield ToySentiment
    unregister_task(ToySentiment.name)


@pytest.fixture
def toy_data(tmp_path) -> Path:
    root = tmp_path / "data"
    (root / "toy").mkdir(parents=True)
    rows = [{"sentence": s, "label": True} for s in POSITIVE] + [{"sentence": s, "label": False} for s in NEGATIVE]
    for name, chosen in (("train", rows[::2]), ("dev32", rows[1::2]), ("val", rows)):
        (root / "toy" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return root


def _tiny_superglue(task: str, method: str) -> SuperGLUEConfig:
    config = SuperGLUEConfig(task=task, method=method, preset="cpu", seeds=[42, 43], dtype="float32")
    config.train = replace(config.train, max_steps=3, batch_size=4, eval_every_steps=1)
    return config


def test_a_task_declared_in_one_test_file_runs_end_to_end_into_the_report(toy_task, toy_data, tmp_path, load_tiny):
    results = run_superglue(_tiny_superglue("toy", "ptuning"), root=toy_data, results_root=tmp_path / "results",
                            runs_root=tmp_path / "runs", backbone=load_tiny("gpt2"), quiet=True)
    saved = json.loads((tmp_path / "results/superglue/fewshot/gpt2/ptuning/toy.json").read_text())
    assert saved == json.loads(json.dumps(results["toy"]))
    assert list(saved["mean"]) == ["acc"] and set(saved["seeds"]) == {"42", "43"}
    assert all(saved["training"][s]["steps"] == 3 for s in ("42", "43")) and saved["n_eval"] == 16
    assert saved["config"]["template"] == "{sentence} . [P] Happy ? [MASK] ."

    out = tmp_path / "report"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(out), "--no-reproducing",
                 "--no-plots"]) == 0
    table = (out / "tables" / "table5.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert header.rstrip(" |").endswith("Toy acc")  # the task's column, after the paper's
    row = next(line for line in table.splitlines() if "| gpt2 |" in line and line.startswith("| P-tuning"))
    assert row.rstrip(" |").split(" | ")[-1].startswith(f"{saved['mean']['acc']:.1f}±")


def test_a_method_declared_in_one_test_file_trains_on_a_tiny_backbone(toy_task, toy_data, tmp_path, load_tiny):
    method = register_method(Method("prompt-slots-ft", "superglue", "LM-FT on P-tuning pattern", Style.PTUNING,
                                    uses_encoder=False, trains_backbone=True,
                                    description="the LM trains; prompt positions keep their token embeddings"))
    try:
        backbone = load_tiny("gpt2")
        before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
        results = run_superglue(_tiny_superglue("toy", method.name), root=toy_data, results_root=tmp_path / "results",
                                runs_root=tmp_path / "runs", backbone=backbone, quiet=True)
        training = results["toy"]["training"]
        assert training["42"]["steps"] == 3 and training["43"]["steps"] == 3
        assert (tmp_path / "results/superglue/fewshot/gpt2/prompt-slots-ft/toy.json").is_file()
        # the LM is restored to its pretrained weights before each seed, so only the last seed's training shows
        after = backbone.model.state_dict()
        assert any(not after[k].equal(before[k]) for k in before)
    finally:
        unregister_method("superglue", method.name)


def test_a_lama_method_entry_runs_without_touching_the_driver(tmp_path, load_tiny, shared_data):
    method = register_method(Method("bare-zero-shot", "lama", "bare MP", Style.BARE, False, False,
                                    "subject then [MASK], nothing trained"))
    try:
        config = LamaConfig(method=method.name, relations=["P17"], dtype="float32")
        summary = run_lama(config, root=shared_data, results_root=tmp_path / "results", runs_root=tmp_path / "runs",
                           backbone=load_tiny("gpt2"), quiet=True)
        relation = json.loads((tmp_path / "results/lama/gpt2/bare-zero-shot-29k/P17.json").read_text())
        assert relation["template"] == "{sub} [MASK]" and "training" not in relation
        assert summary["relations"]["P17"]["p_at_1"] == relation["p_at_1"] is not None
    finally:
        unregister_method("lama", method.name)
