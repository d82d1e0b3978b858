"""LAMA end to end on tiny backbones and the real LAMA files: results, resume, errors, templates."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from repro.experiment import engine
from repro.cli import main
from repro.core.backbone import load_backbone
from repro.errors import DataError
from repro.experiment.lama import LamaConfig, PRESETS, method_template, ptuning_template, run_lama
from repro.methods import get_method
from repro.core.template import Template
from repro.tasks import lama as lama_data

RELATIONS = ["P101", "P1376"]
TINY_TRAIN = replace(PRESETS["cpu"].train, max_steps=4, eval_every_steps=2, batch_size=4, lr_encoder=1e-2)


def _config(method: str, **kwargs) -> LamaConfig:
    return LamaConfig(method=method, relations=RELATIONS, train=TINY_TRAIN, max_train=16, max_dev=8,
                      dtype="float32", eval_batch_size=16, **kwargs)


def _run(load_tiny, name, config, shared_data, tmp_path, **kwargs):
    return run_lama(config, root=shared_data, results_root=tmp_path / "results", backbone=load_tiny(name), quiet=True,
                    **kwargs)


def test_paper_templates_for_masked_and_causal(load_tiny, shared_data):
    bert, gpt2 = load_tiny("bert"), load_tiny("gpt2")
    assert ptuning_template(bert, _config("ptuning")).parts == Template.parse((3, "sub", 3, "obj", 3)).parts
    assert ptuning_template(gpt2, _config("ptuning")).parts == Template.parse((3, "sub", 3, "obj")).parts
    code = ptuning_template(bert, _config("ptuning", mask_order="code"))
    assert str(code) == "[P*3] [MASK] [P*3] {sub} [P*3]"
    relation = lama_data.get_relations(shared_data, ["P36"])[0]
    manual = method_template(get_method("mp", "lama"), relation, gpt2, _config("mp"))
    assert str(manual) == "The capital of {sub} is [MASK] ."
    # rendered for the causal LM: the manual prompt up to the object, read at its last token
    tok = gpt2.tokenizer
    r = manual.render(tok, {"sub": "France"}, causal=True, target_ids=[5])
    assert r.input_ids == tok("The capital of France is", add_special_tokens=False)["input_ids"]
    assert r.target_positions == [len(r.input_ids) - 1]


@pytest.mark.parametrize("name", ["gpt2", "bert"])
@pytest.mark.parametrize("method", ["mp", "ptuning", "ft", "mp+ft"])
def test_methods_write_relation_files_and_a_summary(load_tiny, shared_data, tmp_path, name, method):
    summary = _run(load_tiny, name, _config(method), shared_data, tmp_path)
    out = tmp_path / "results" / "lama" / name / f"{method}-29k"
    assert {p.name for p in out.iterdir()} == {"P101.json", "P1376.json", "summary.json"}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["macro_p_at_1"] == summary["macro_p_at_1"]
    assert on_disk["metric"] == {"module": "repro.evaluate_modules.lama", "config": "default", "version": "1.0.0"}
    assert on_disk["config"]["backbone_kind"] == ("causal" if name == "gpt2" else "masked")
    assert on_disk["command"] and on_disk["environment"]["packages"]["torch"] and on_disk["wall_time_s"] >= 0
    vocab = lama_data.allowed_vocab(shared_data, "29k", load_tiny(name).tokenizer, space_before=True)
    for rel in RELATIONS:
        kept, dropped = lama_data.filter_facts(lama_data.load_facts(shared_data, rel, "test"), vocab)
        entry = on_disk["relations"][rel]
        assert (entry["kept"], entry["dropped"]) == (len(kept), len(dropped))
        assert entry["partial"] == (rel == "P1376")  # P1376's test file is rebuilt (PARTIAL.tsv)
        per_rel = json.loads((out / f"{rel}.json").read_text())
        assert 0.0 <= per_rel["p_at_1"] <= 100.0 and per_rel["correct"] <= per_rel["kept"]
        assert ("training" in per_rel) == (method != "mp")
    correct = sum(json.loads((out / f"{r}.json").read_text())["correct"] for r in RELATIONS)
    assert summary["micro_p_at_1"] == pytest.approx(100 * correct / summary["n_facts"])


def test_relations_without_training_data_are_skipped_with_the_reason(load_tiny, shared_data, tmp_path):
    config = replace(_config("ptuning"), relations=["P47", "P101"])
    summary = _run(load_tiny, "gpt2", config, shared_data, tmp_path)
    assert summary["relations"]["P47"]["p_at_1"] is None
    assert "cannot train without train and dev" in summary["relations"]["P47"]["skipped"]
    assert summary["n_relations"] == 1 and any("P47" in n for n in summary["notes"])


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_with_identical_results(load_tiny, shared_data, tmp_path, monkeypatch):
    """The one-relation-at-a-time loop (tests/test_joint.py resumes the joint pass)."""
    straight = _run(load_tiny, "gpt2", _config("ptuning", sequential=True), shared_data, tmp_path / "straight")

    real_train = engine.train
    calls = {"n": 0}

    def interrupting_train(model, items, loss_fn, evaluate, config, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # second relation: stop after its first checkpoint
            def flaky(batch, seen={"n": 0}):
                seen["n"] += 1
                if seen["n"] == 3:
                    raise Interrupted()
                return loss_fn(batch)
            return real_train(model, items, flaky, evaluate, config, **kwargs)
        return real_train(model, items, loss_fn, evaluate, config, **kwargs)

    monkeypatch.setattr(engine, "train", interrupting_train)
    with pytest.raises(Interrupted):
        _run(load_tiny, "gpt2", _config("ptuning", sequential=True), shared_data, tmp_path / "resumed")
    out = tmp_path / "resumed" / "results" / "lama" / "gpt2" / "ptuning-29k"
    assert (out / "P101.json").is_file() and not (out / "P1376.json").exists() and not (out / "summary.json").exists()
    # the checkpoint lives beside its results, in a folder named by the relation's fingerprint
    assert len(list((out / ".resume" / "P1376").glob("*/train_state.pt"))) == 1
    monkeypatch.setattr(engine, "train", real_train)

    first_done = (out / "P101.json").read_text()
    resumed = _run(load_tiny, "gpt2", _config("ptuning", sequential=True), shared_data, tmp_path / "resumed")
    assert (out / "P101.json").read_text() == first_done  # a finished relation is not recomputed
    for rel in RELATIONS:
        assert resumed["relations"][rel] == straight["relations"][rel]
    assert resumed["macro_p_at_1"] == straight["macro_p_at_1"]
    a = json.loads((out / "P1376.json").read_text())["training"]
    b = json.loads((tmp_path / "straight" / "results" / "lama" / "gpt2" / "ptuning-29k" / "P1376.json").read_text())["training"]
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"]


def test_missing_data_root_names_the_fetch_command(tmp_path, capsys):
    code = main(["lama", "--data-root", str(tmp_path / "nowhere"), "--relations", "P17", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "fetch" in err and "Traceback" not in err


def test_corrupt_fact_line_is_named_with_file_and_line(load_tiny, shared_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "lama", root / "lama")
    shutil.copy(shared_data / "PARTIAL.tsv", root / "PARTIAL.tsv")
    test_file = root / "lama" / "fact-retrieval" / "original" / "P36" / "test.jsonl"
    lines = test_file.read_text().splitlines()
    lines[4] = lines[4].replace('"obj_label"', '"object"')
    test_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"P36/test\.jsonl:5: missing field 'obj_label'"):
        run_lama(replace(_config("mp"), relations=["P36"]), root=root, results_root=tmp_path / "r", runs_root=tmp_path / "x",
                 backbone=load_tiny("gpt2"), quiet=True)
    assert not (tmp_path / "r" / "lama" / "gpt2" / "mp-29k").exists()


@pytest.mark.parametrize("sequential", [False, True])
def test_a_relation_with_no_usable_dev_fact_is_skipped_not_crashed(load_tiny, shared_data, tmp_path, sequential):
    """With the tiny GPT-2's vocabulary no P36 dev fact has a one-token object: nothing to select a checkpoint
    with, so P-tuning says so for P36 and trains the other relation."""
    config = replace(_config("ptuning"), relations=["P36", "P101"], sequential=sequential)
    summary = _run(load_tiny, "gpt2", config, shared_data, tmp_path)
    assert summary["relations"]["P36"]["p_at_1"] is None
    assert "no dev fact has its object in the allowed vocabulary" in summary["relations"]["P36"]["skipped"]
    assert summary["relations"]["P101"]["p_at_1"] is not None and summary["n_relations"] == 1


def test_mp_fingerprint_ignores_the_training_schedule_that_ptuning_depends_on():
    """MP never trains: a preset's new training schedule must not mark MP's results stale (it did, once, when the
    cpu preset started clipping gradients), while P-tuning's fingerprint must follow every training setting."""
    from dataclasses import replace as swap

    from repro.experiment.lama import PRESETS, LamaConfig

    other = swap(PRESETS["cpu"].train, max_grad_norm=None, batch_size=8, lr_encoder=1e-3)
    for method, same in (("mp", True), ("ptuning", False)):
        plain = LamaConfig(method=method)
        changed = LamaConfig(method=method, train=other, max_dev=16, encoder="mlp")
        assert (plain.fingerprint() == changed.fingerprint()) is same, method
    assert LamaConfig(method="mp", dtype="float32").fingerprint() != LamaConfig(method="mp").fingerprint()


def test_ptuning_with_no_reparameterisation_through_the_cli(tiny_dirs, shared_data, tmp_path, monkeypatch, capsys):
    """`--encoder none` (the ablation): the joint pass trains bare prompt embeddings, and every file says so."""
    import torch

    from repro.experiment import joint as joint_engine
    from repro.ptuning import PromptEncoderReparameterizationType

    built = []
    real_new_encoder = joint_engine.new_encoder

    def spying(*args):
        built.append(real_new_encoder(*args))
        return built[-1]

    monkeypatch.setattr(joint_engine, "new_encoder", spying)
    code = main(["lama", "--backbone", str(tiny_dirs["gpt2"]), "--data-root", str(shared_data), "--method", "ptuning",
                 "--encoder", "none", "--relations", ",".join(RELATIONS), "--max-steps", "4", "--eval-every", "2",
                 "--batch-size", "4", "--max-train", "16", "--max-dev", "8", "--dtype", "float32",
                 "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert len(built) == len(RELATIONS)  # one per relation, in one joint pass
    for encoder in built:
        assert encoder.encoder_type is PromptEncoderReparameterizationType.NONE
        assert [name for name, _ in encoder.named_parameters()] == ["embedding.weight"]
        assert torch.equal(encoder.prompts(), encoder.embedding.weight)
    torch.manual_seed(LamaConfig.DEFAULT_SEEDS[0])  # the relations' seed: each encoder's starting rows
    start = real_new_encoder(3, load_backbone(str(tiny_dirs["gpt2"])), _config("ptuning", encoder="none"))
    assert not torch.equal(built[0].embedding.weight[:3], start.embedding.weight)  # trained from there
    out = next((tmp_path / "results" / "lama").glob("*/ptuning-none-29k"))  # not the default (MLP) run's folder
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["encoder"] == "none" and summary["config"]["encoder_hidden"] == 0
    for rel in RELATIONS:
        per_rel = json.loads((out / f"{rel}.json").read_text())
        assert per_rel["config"]["encoder"] == "none" and per_rel["training"]["steps"] == 4
        assert per_rel["fingerprint_fields"]["config"]["encoder"] == "none"
        assert summary["relations"][rel]["p_at_1"] is not None


def test_no_reparameterisation_has_its_own_fingerprint():
    """A `none` result is never reused for an lstm or mlp run, nor the other way round."""
    fingerprints = {enc: LamaConfig(method="ptuning", encoder=enc).fingerprint() for enc in ("lstm", "mlp", "none")}
    assert len(set(fingerprints.values())) == 3
    assert LamaConfig(method="ptuning", encoder="none", encoder_hidden=0).to_dict()["encoder"] == "none"
