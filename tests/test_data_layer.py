"""The data layer (repro/splits.py): every split a `datasets.Dataset` read by the json builder after the line-scan
validation, cached by the file's bytes; and SuperGLUE from the hub (repro/superglue_hub.py): the hub's schema
(ClassLabel labels, MultiRC's answer rows with nested idx, ReCoRD's entity and answer lists) mapped back to
the jsonl rows, checked offline on a DatasetDict built here with the hub's features."""

from __future__ import annotations

import json
import os
import time

import datasets
import pytest
from datasets import ClassLabel, DatasetDict, Features, List, Value

from repro import splits, superglue_hub
from repro.cli import main
from repro.data import iter_jsonl
from repro.errors import ConfigError, DataError
from repro.experiment.superglue import run_superglue
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.splits import LINE_COLUMN, load_jsonl, rows
from repro.tasks import lama as lama_data
from repro.tasks.registry import get_task

TASK_FILES = {  # a task's jsonl file (SuperGLUE's, except ReCoRD, whose dev set the mirror lacks) and hub split
    "boolq": ("superglue/BoolQ/val.jsonl", "validation"), "cb": ("superglue/CB/val.jsonl", "validation"),
    "copa": ("superglue/COPA/val.jsonl", "validation"), "multirc": ("superglue/MultiRC/val.jsonl", "validation"),
    "record": ("fewglue/ReCoRD/train.jsonl", "train"), "rte": ("superglue/RTE/val.jsonl", "validation"),
    "wic": ("superglue/WiC/val.jsonl", "validation"), "wsc": ("superglue/WSC/val.jsonl", "validation"),
    "axb": ("superglue/AX-b/AX-b.jsonl", "test"), "axg": ("superglue/AX-g/AX-g.jsonl", "test"),
}


# ------------------------------------------------------------------------------------------------ the data layer
def test_splits_are_datasets_with_line_numbers_and_the_files_rows(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "facts.jsonl"
    real = (shared_data / lama_data.relation_file("P17", "test")).read_text().splitlines()[:3]
    path.write_text(real[0] + "\n\n" + real[1] + "\n" + real[2] + "\n")
    split = load_jsonl(path, required=lama_data.FACT_FIELDS)
    assert isinstance(split, datasets.Dataset) and split[LINE_COLUMN] == [1, 3, 4]
    assert list(rows(split)) == [(n, json.loads(line)) for n, line in zip((1, 3, 4), real)]
    assert [r for _, r in rows(split, ["obj_label"])] == [{"obj_label": json.loads(line)["obj_label"]} for line in real]
    assert list((tmp_path / "cache" / "datasets").iterdir()), "the builder's Arrow files live in the cache dir"

    # the same bytes again: neither scanned nor built again (the record of the first read maps its Arrow files)
    scans = []
    monkeypatch.setattr(splits, "iter_jsonl", lambda *a, **k: scans.append(a) or iter_jsonl(*a, **k))
    assert list(rows(load_jsonl(path, required=lama_data.FACT_FIELDS))) == list(rows(split)) and not scans
    bad = tmp_path / "bad.jsonl"
    bad.write_text(real[0] + "\n{\n")
    for _ in range(2):  # a file that fails the scan is scanned (and fails) on every read
        with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
            load_jsonl(bad)
    assert len(scans) == 2

    # the same size and mtime, other bytes: read anew (the cache is keyed by the file's sha256, not its mtime)
    stat = path.stat()
    edited = path.read_text().replace(json.loads(real[0])["sub_label"], "X" * len(json.loads(real[0])["sub_label"]), 1)
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert next(rows(load_jsonl(path)))[1]["sub_label"].startswith("XX")


def test_every_task_reads_from_its_dataset_the_examples_of_its_lines(shared_data):
    """The examples each task makes from the Dataset's rows are those it makes from the line scan's objects,
    on every task's real file (and LAMA's facts), so the data layer changes no number."""
    for name, (rel, _) in TASK_FILES.items():
        task, path = get_task(name), shared_data / rel
        scanned = task.examples_of(iter_jsonl(path, required=task.required_fields), str(path))
        assert task.read(path) == scanned, name
    facts = lama_data.load_facts(shared_data, "P1376", "test")
    path = shared_data / lama_data.relation_file("P1376", "test")
    assert [(f.sub_label, f.obj_label, f.line, f.uuid) for f in facts] == [
        (r["sub_label"], r["obj_label"], n, r.get("uuid")) for n, r in iter_jsonl(path)]


def test_a_schema_the_builder_cannot_hold_is_one_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1, "__line__": 2}\n')
    with pytest.raises(DataError, match=r"mixed\.jsonl: a field is named '__line__'"):
        load_jsonl(path)
    path.write_text("\n\n")
    assert len(load_jsonl(path)) == 0
    with pytest.raises(DataError, match=r"mixed\.jsonl: empty \(no JSON line\)"):
        load_jsonl(path, allow_empty=False)


# ------------------------------------------------------------------------------------------------ the hub
S, I = Value("string"), Value("int32")
FALSE_TRUE = ClassLabel(names=["False", "True"])
NLI = ClassLabel(names=["entailment", "not_entailment"])
HUB_FEATURES = {  # the datasets SuperGLUE script's `_info` (huggingface/datasets datasets/super_glue/super_glue.py)
    "boolq": Features({"question": S, "passage": S, "idx": I, "label": FALSE_TRUE}),
    "cb": Features({"premise": S, "hypothesis": S, "idx": I,
                    "label": ClassLabel(names=["entailment", "contradiction", "neutral"])}),
    "copa": Features({"premise": S, "choice1": S, "choice2": S, "question": S, "idx": I,
                      "label": ClassLabel(names=["choice1", "choice2"])}),
    "multirc": Features({"paragraph": S, "question": S, "answer": S,
                         "idx": {"paragraph": I, "question": I, "answer": I}, "label": FALSE_TRUE}),
    "record": Features({"passage": S, "query": S, "entities": List(S), "answers": List(S),
                        "idx": {"passage": I, "query": I}}),
    "rte": Features({"premise": S, "hypothesis": S, "idx": I, "label": NLI}),
    "wic": Features({"word": S, "sentence1": S, "sentence2": S, "start1": I, "start2": I, "end1": I, "end2": I,
                     "idx": I, "label": FALSE_TRUE}),
    "wsc": Features({"text": S, "span1_index": I, "span2_index": I, "span1_text": S, "span2_text": S, "idx": I,
                     "label": FALSE_TRUE}),
    "axb": Features({"sentence1": S, "sentence2": S, "idx": I, "label": NLI}),
    "axg": Features({"premise": S, "hypothesis": S, "idx": I, "label": NLI}),
}
RECORD_WITH_SPANS = Features({**HUB_FEATURES["record"], "entity_spans": {"text": List(S), "start": List(I),
                                                                          "end": List(I)}})


def _class(name: str, value) -> int:
    """A jsonl label as the hub's class index (-1: unlabeled)."""
    if value is None:
        return -1
    names = HUB_FEATURES[name]["label"].names
    return value if name == "copa" else names.index(str(bool(value)) if names[0] == "False" else value)


def _as_hub(name: str, row: dict, spans: bool) -> list[dict]:
    """The hub's rows of one jsonl row, made the way the datasets script made them (its direction)."""
    fields = [k for k in HUB_FEATURES[name] if k not in ("idx", "label")]
    if name == "multirc":
        return [{"paragraph": row["passage"]["text"], "question": q["question"], "answer": a["text"],
                 "idx": {"paragraph": row["idx"], "question": q["idx"], "answer": a["idx"]},
                 "label": _class(name, a.get("label"))}
                for q in row["passage"]["questions"] for a in q["answers"]]
    if name == "record":
        text = row["passage"]["text"]
        found = [(e["start"], text[e["start"]: e["end"] + 1]) for e in row["passage"]["entities"]]
        out = []
        for qa in row["qas"]:
            hub = {"passage": text, "query": qa["query"], "entities": sorted({t for _, t in found}),
                   "answers": sorted({a["text"] for a in qa.get("answers", [])}),
                   "idx": {"passage": row["idx"], "query": qa["idx"]}}
            if spans:  # exclusive ends here: the mapping reads start and text only
                hub["entity_spans"] = {"text": [t for _, t in found], "start": [s for s, _ in found],
                                       "end": [s + len(t) for s, t in found]}
            out.append(hub)
        return out
    flat = {**row, **row.get("target", {})}
    return [{**{k: flat[k] for k in fields}, "idx": int(row["idx"]), "label": _class(name, row.get("label"))}]


def _hub_split(name: str, local_rows: list[dict], split: str, spans: bool = False) -> DatasetDict:
    features = RECORD_WITH_SPANS if name == "record" and spans else HUB_FEATURES[name]
    hub_rows = [h for row in local_rows for h in _as_hub(name, row, spans)]
    return DatasetDict({split: datasets.Dataset.from_list(hub_rows, features=features)})


def _comparable(ex, exact: bool = True):
    """What an example is made of; `exact=False` (ReCoRD without the hub's entity spans): the candidates as a set
    and the gold one by its text, since an untagged earlier mention can change their order."""
    meta = {k: (sorted(v) if k == "answers" else v) for k, v in ex.meta.items()}
    if exact:
        return (ex.values, ex.label, ex.candidates, ex.group, meta)
    gold = None if ex.label is None else ex.candidates[ex.label]
    return (ex.values, gold, sorted(ex.candidates), ex.group, meta)


@pytest.mark.parametrize("name", list(TASK_FILES))
def test_hub_rows_make_the_examples_of_the_jsonl_files(shared_data, name):
    task = get_task(name)
    rel, split = TASK_FILES[name]
    lines = (shared_data / rel).read_text(encoding="utf-8").splitlines()
    local_rows = [json.loads(line) for line in lines[: 8 if name == "multirc" else 40]]
    expected = task.examples_of(enumerate(local_rows, 1), rel)
    for spans in ((False, True) if name == "record" else (False,)):
        exact = name != "record" or spans
        hub = _hub_split(name, local_rows, split, spans)
        got = superglue_hub.examples(task, hub[split], "hub:test")
        assert [_comparable(ex, exact) for ex in got] == [_comparable(ex, exact) for ex in expected], (name, spans)
        assert got[0].uid.startswith("hub:test:1")
    if name in ("cb", "wsc"):  # the hub's unlabeled (test) rows hold -1: no label
        unlabeled = [h | {"label": -1} for h in _as_hub(name, local_rows[0], False)]
        dataset = datasets.Dataset.from_list(unlabeled, features=HUB_FEATURES[name])
        assert {ex.label for ex in superglue_hub.examples(task, dataset, "hub:test")} == {None}


def test_hub_source_offline_fails_at_once_with_one_line(monkeypatch, capsys, tmp_path, tiny_dirs, shared_data):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    started = time.perf_counter()
    code = main(["superglue", "--task", "cb", "--method", "mp", "--backbone", str(tiny_dirs["gpt2"]),
                 "--data-root", str(shared_data), "--results", str(tmp_path / "out"), "--data-source", "hub",
                 "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - started < 5, err
    assert len(err.splitlines()) == 1 and err.startswith("error: --data-source hub: cannot read the hub's super_glue cb")
    assert not (tmp_path / "out").exists()


def test_hub_without_network_is_probed_once(monkeypatch):
    from repro.core import backbone as backbone_module

    calls = []

    def unreachable(address, timeout):
        calls.append(timeout)
        raise OSError(-2, "Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(backbone_module.socket, "create_connection", unreachable)
    with pytest.raises(ConfigError, match=r"the hub does not answer .*--data-source local"):
        superglue_hub.load_split("cb", "validation")
    assert len(calls) == 1 and calls[0] <= 5


def test_data_source_hub_runs_superglue_and_is_refused_for_lama(monkeypatch, shared_data, tmp_path, load_tiny):
    """A SuperGLUE run reads the hub split (here the DatasetDict above, in place of the download): the same
    numbers as from the file, the data fields name the hub split; LAMA has no hub source."""
    rel, split = TASK_FILES["cb"]
    local_rows = [json.loads(line) for line in (shared_data / rel).read_text().splitlines()]
    hub = _hub_split("cb", local_rows, split)
    monkeypatch.setattr(superglue_hub, "load_split", lambda config, name: hub[name])

    def run(source: str):
        config = SuperGLUEConfig(task="cb", method="mp", preset="cpu", dtype="float32")
        return run_superglue(config, root=shared_data, results_root=tmp_path / source, backbone=load_tiny("gpt2"),
                             quiet=True, data_source=source)["cb"]

    local, from_hub = run("local"), run("hub")
    assert from_hub["seeds"] == local["seeds"] and from_hub["n_eval"] == local["n_eval"] == len(local_rows)
    assert list(from_hub["fingerprint_fields"]["data"]) == [f"hub:{rel}"]
    assert any("read from the hub: hub:super_glue/cb/validation" in n for n in from_hub["notes"])
    from repro.experiment.lama import LamaConfig, run_lama

    with pytest.raises(ConfigError, match="--data-source hub reads SuperGLUE .* lama reads the data root"):
        run_lama(LamaConfig(method="mp", relations=["P101"]), root=shared_data, results_root=tmp_path / "lama",
                 backbone=load_tiny("gpt2"), data_source="hub", quiet=True)
