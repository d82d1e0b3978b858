"""Runs that never lie: own run folders, summaries never shrunk, complete fingerprints (issue 16, items 3-5).

Tiny random backbones on the real LAMA files; MP where training adds nothing to what is tested (it is
fingerprinted like P-tuning, minus the training files), P-tuning with a few steps where training matters."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.cli import main
from repro.experiment import engine
from repro.experiment.engine import Workspace
from repro.experiment.fingerprints import code_version, differences, file_sha256
from repro.experiment.lama import PRESETS, LamaConfig, run_lama
from repro.report.cli import reproducing_path
from repro.results import PROJECT_ROOT, REFERENCE_DIR, RUNS_DIR

TINY_TRAIN = replace(PRESETS["cpu"].train, max_steps=4, eval_every_steps=2, batch_size=4, lr_encoder=1e-2)
THREE = ["P101", "P1376", "P36"]


def _config(method: str = "mp", relations=THREE, **kwargs) -> LamaConfig:
    return LamaConfig(method=method, relations=relations, train=TINY_TRAIN, max_train=kwargs.pop("max_train", 16),
                      max_dev=kwargs.pop("max_dev", 8), dtype="float32", eval_batch_size=16, **kwargs)


def _run(load_tiny, config, root, results, **kwargs):
    return run_lama(config, root=root, results_root=results, backbone=load_tiny("gpt2"), quiet=True, **kwargs)


def _out(results: Path, method: str = "mp") -> Path:
    return results / "lama" / "gpt2" / f"{method}-29k"


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout


def test_runs_default_to_the_ignored_runs_folder_and_resume_state_sits_inside():
    ws = Workspace()
    assert ws.results_root == RUNS_DIR != REFERENCE_DIR and ws.runs_root is None
    run_folder = RUNS_DIR / "lama" / "gpt2" / "mp-29k"
    assert ws.state_dir(run_folder) == run_folder / ".resume"
    elsewhere = Workspace(results_root=Path("/tmp/x"), runs_root=Path("/tmp/state"))
    assert elsewhere.state_dir(Path("/tmp/x/lama/gpt2/mp-29k")) == Path("/tmp/state/lama/gpt2/mp-29k")
    for path in ("runs/lama/x.json", "results/lama/a/.resume/f.json"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=PROJECT_ROOT).returncode == 0


def test_cli_run_and_three_column_table_leave_the_committed_files_untouched(tiny_dirs, shared_data, tmp_path, capsys):
    before = _git_status()
    results = tmp_path / "mine"
    assert main(["lama", "--backbone", str(tiny_dirs["gpt2"]), "--method", "mp", "--relations", "P101,P36",
                 "--data-root", str(shared_data), "--results", str(results), "--quiet"]) == 0
    backbone = Path(tiny_dirs["gpt2"]).name
    ours = json.loads((results / "lama" / backbone / "mp-29k" / "summary.json").read_text())
    capsys.readouterr()
    reference = tmp_path / "reference"
    shutil.copytree(results, reference)
    summary = reference / "lama" / backbone / "mp-29k" / "summary.json"
    data = json.loads(summary.read_text())
    data["relations"]["P36"]["p_at_1"] = 99.5
    summary.write_text(json.dumps(data))
    assert main(["lama-table", "--backbone", backbone, "--methods", "mp", "--results", str(results),
                 "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("P36"))
    assert row[2:] == [f"{ours['relations']['P36']['p_at_1']:.1f}", "99.5", "—"]  # ours | reference | paper
    macro = next(line.split() for line in out.splitlines() if line.startswith("macro"))
    assert macro[-1] == "20.3†"  # the paper's GPT-2 medium MP, Table 2 right
    assert _git_status() == before


def test_subset_run_keeps_every_finished_relation_in_the_summary(load_tiny, shared_data, tmp_path):
    full = _run(load_tiny, _config(), shared_data, tmp_path)
    assert full["n_relations"] == 3
    subset = _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path)
    assert list(subset["relations"]) == list(full["relations"])
    assert subset["macro_p_at_1"] == full["macro_p_at_1"] and subset["n_relations"] == 3
    on_disk = json.loads((_out(tmp_path) / "summary.json").read_text())
    assert on_disk["n_relations"] == 3 and on_disk["config"]["relations"] == list(full["relations"])


def test_changed_thread_count_recomputes_and_says_why(load_tiny, shared_data, tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path, threads=1)
        first = json.loads((_out(tmp_path) / "P36.json").read_text())
        capsys.readouterr()
        _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path, threads=1)
        assert "reused 1 of 1 relations" in capsys.readouterr().err
        _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path, threads=2)
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "recomputing 1 relation(s) (P36): threads 1 -> 2" in err
    second = json.loads((_out(tmp_path) / "P36.json").read_text())
    assert second["fingerprint_fields"]["threads"] == 2 != first["fingerprint_fields"]["threads"]
    # the replaced file is set aside, not lost
    aside = list((_out(tmp_path) / ".resume" / "superseded").glob("*/P36.json"))
    assert [json.loads(p.read_text())["config_fingerprint"] for p in aside] == [first["config_fingerprint"]]


def test_changed_data_file_recomputes(load_tiny, shared_data, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "lama", root / "lama")
    shutil.copy(shared_data / "PARTIAL.tsv", root / "PARTIAL.tsv")
    _run(load_tiny, _config(relations=["P36", "P101"]), root, tmp_path / "r")
    test_file = root / "lama" / "fact-retrieval" / "original" / "P36" / "test.jsonl"
    lines = test_file.read_text().splitlines()
    test_file.write_text("\n".join(lines[:-5]) + "\n")  # five facts fewer
    capsys.readouterr()
    summary = _run(load_tiny, _config(relations=["P36", "P101"]), root, tmp_path / "r")
    err = capsys.readouterr().err
    assert "reused 1 of 2 relations" in err
    assert "recomputing 1 relation(s) (P36): data file lama/fact-retrieval/original/P36/test.jsonl changed" in err
    assert summary["relations"]["P36"]["kept"] + summary["relations"]["P36"]["dropped"] == len(lines) - 5


def test_an_edit_to_the_training_code_recomputes_and_says_why(load_tiny, shared_data, tmp_path, monkeypatch, capsys):
    """Reliability: a finished unit made by other training code (loop, model, encoder, task files) is not reused.
    The version hashes the code of a copy of the project's files: a docstring edit keeps it, a code edit moves it."""
    import repro.results
    from repro.experiment import fingerprints

    copy = tmp_path / "project"
    for part in fingerprints.TRAINING_CODE + fingerprints.SCORER_CODE:
        source = PROJECT_ROOT / part
        (copy / part).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / part)
    monkeypatch.setattr(repro.results, "PROJECT_ROOT", copy)
    code_version.cache_clear()
    try:
        before = code_version(fingerprints.TRAINING_CODE)
        assert before != code_version()  # its own hash, beside the scorer's
        cb = copy / "tasks" / "cb.py"
        cb.write_text(cb.read_text().replace('"""', '"""Edited docstring. ', 1))
        code_version.cache_clear()
        assert code_version(fingerprints.TRAINING_CODE) == before
        _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path / "r")
        capsys.readouterr()
        cb.write_text(cb.read_text() + "\nEDITED = 1\n")
        code_version.cache_clear()
        assert code_version(fingerprints.TRAINING_CODE) != before
        _run(load_tiny, _config(relations=["P36"]), shared_data, tmp_path / "r")
    finally:
        code_version.cache_clear()
    assert "recomputing 1 relation(s) (P36): training code changed" in capsys.readouterr().err
    old = {"training_code": "a", "threads": 1}
    assert differences({"threads": 1}, old) == "training code not recorded before"
    assert differences(old, {**old, "training_code": "b"}) == "training code changed"


def test_an_installed_copy_hashes_its_code_as_the_checkout_does(tmp_path, monkeypatch):
    """An installed package holds tasks/ as repro/tasks (pyproject's package-dir): the training-code version is
    found there and equals the checkout's, so results made from either layout are reusable by the other."""
    import repro.results
    from repro.experiment import fingerprints

    checkout = code_version(fingerprints.TRAINING_CODE)
    installed = tmp_path / "site-packages"
    for part in fingerprints.TRAINING_CODE + fingerprints.SCORER_CODE:
        source, target = PROJECT_ROOT / part, installed / ("repro/tasks" if part == "tasks" else part)
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    assert not (installed / "tasks").exists()
    monkeypatch.setattr(repro.results, "PROJECT_ROOT", installed)
    code_version.cache_clear()
    try:
        assert code_version(fingerprints.TRAINING_CODE) == checkout
        (installed / "repro/tasks/cb.py").write_text("EDITED = 1\n")
        code_version.cache_clear()
        assert code_version(fingerprints.TRAINING_CODE) != checkout  # the installed tasks are read, not skipped
    finally:
        code_version.cache_clear()


class Interrupted(Exception):
    pass


def test_changed_max_dev_recomputes_and_sets_the_old_checkpoint_aside(load_tiny, shared_data, tmp_path, monkeypatch,
                                                                        capsys):
    """A P-tuning relation killed with max_dev 8 is not resumed by a max_dev 16 run (its checkpoint is set aside,
    not blocking), and the max_dev 16 result equals a straight max_dev 16 run."""
    config = lambda dev: _config("ptuning", relations=["P101"], max_dev=dev, sequential=True)  # noqa: E731
    straight = _run(load_tiny, config(16), shared_data, tmp_path / "straight")
    real_train = engine.train

    def interrupting(model, items, loss_fn, evaluate, cfg, **kwargs):
        def flaky(batch, seen={"n": 0}):
            seen["n"] += 1
            if seen["n"] == 3:
                raise Interrupted()
            return loss_fn(batch)
        return real_train(model, items, flaky, evaluate, cfg, **kwargs)

    monkeypatch.setattr(engine, "train", interrupting)
    with pytest.raises(Interrupted):
        _run(load_tiny, config(8), shared_data, tmp_path / "r")
    monkeypatch.setattr(engine, "train", real_train)
    state = _out(tmp_path / "r", "ptuning") / ".resume" / "P101"
    old = [p.parent for p in state.glob("*/train_state.pt")]
    assert len(old) == 1
    capsys.readouterr()
    resumed = _run(load_tiny, config(16), shared_data, tmp_path / "r")
    err = capsys.readouterr().err
    assert "set aside 1 resume folder(s) with other settings" in err and "max_dev 8 -> 16" in err
    assert resumed["relations"] == straight["relations"] and resumed["macro_p_at_1"] == straight["macro_p_at_1"]
    done = json.loads((_out(tmp_path / "r", "ptuning") / "P101.json").read_text())
    assert done["training"]["n_dev"] == 16
    assert old[0].is_dir()  # left aside, untouched


def test_fingerprint_fields_name_their_differences(tmp_path):
    a = {"config": {"max_dev": 8, "train": {"lr_encoder": 1e-3}}, "threads": 1, "data": {"x.jsonl": "aa"}}
    b = {"config": {"max_dev": 16, "train": {"lr_encoder": 1e-3}}, "threads": 2, "data": {"x.jsonl": "bb"}}
    assert differences(a, b) == "max_dev 8 -> 16; data file x.jsonl changed; threads 1 -> 2"
    assert differences(None, b).startswith("written before")
    path = tmp_path / "f.txt"
    path.write_text("one")
    first = file_sha256(path)
    path.write_text("two!")
    assert file_sha256(path) != first  # size/mtime changed: rehashed
    assert len(code_version()) == 16


def test_report_writes_reproducing_only_for_the_project_results(tmp_path):
    def args(**kw):
        base = dict(results=None, reproducing=None, no_reproducing=False)
        return argparse.Namespace(**{**base, **kw})

    assert reproducing_path(args(results=tmp_path)) is None
    assert reproducing_path(args()) == PROJECT_ROOT / "REPRODUCING.md"
    assert reproducing_path(args(results=PROJECT_ROOT / "results")) == PROJECT_ROOT / "REPRODUCING.md"
    assert reproducing_path(args(results=tmp_path, reproducing=tmp_path / "R.md")) == tmp_path / "R.md"
    assert reproducing_path(args(no_reproducing=True)) is None


def test_results_record_the_cpu_and_its_bf16_path():
    """Known spread (issue 16): bf16 numbers differ between AMX and AVX512-BF16 kernels, so every result names
    the CPU, oneDNN's ISA and the kernel a bf16 matmul ran with (a child process with ONEDNN_VERBOSE=1)."""
    from repro.results import BF16_FLAGS, environment

    env = environment("bfloat16", "cpu")
    path = env["bf16_path"]
    assert env["cpu_model"] and env["gpu_model"] is None
    assert path["onednn_isa"] and path["bf16_matmul_kernel"]  # e.g. "brg_matmul:avx10_1_512_amx"
    assert set(path["cpu_flags"]) <= set(BF16_FLAGS)
    if "amx_bf16" in path["cpu_flags"] and not path["onednn_max_cpu_isa"]:
        assert "amx" in path["bf16_matmul_kernel"].lower()  # oneDNN picks the AMX kernel where the CPU has it


def test_an_ablation_or_paper_schedule_run_gets_its_own_folder_and_table_row(tmp_path):
    """A non-default encoder or preset must not recompute over the default run's committed files (same folder,
    other fingerprint) nor compete with it for one table row; default runs keep their folders and labels."""
    from repro.experiment import superglue
    from repro.experiment.lama import output_dir, run_name
    from repro.experiment.superglue_config import SuperGLUEConfig
    from repro.report.match import variant_label
    from repro.report.results import Result

    assert run_name(_config("ptuning")) == "ptuning-29k" and run_name(_config("mp")) == "mp-29k"
    assert _config("ptuning").encoder == "mlp" and _config("ptuning", preset="paper").encoder == "lstm"  # the preset's
    assert run_name(_config("ptuning", encoder="mlp")) == "ptuning-29k"  # the cpu preset's own encoder
    assert run_name(_config("ptuning", encoder="lstm")) == "ptuning-lstm-29k"
    assert run_name(_config("ptuning", preset="paper")) == "ptuning-paper-29k"  # the paper preset's LSTM
    assert run_name(_config("ptuning", encoder="mlp", preset="paper")) == "ptuning-mlp-paper-29k"
    assert run_name(_config("ptuning", encoder="none", preset="paper")) == "ptuning-none-paper-29k"
    assert run_name(_config("mp", preset="paper")) == "mp-paper-29k"
    assert _config("ft").encoder == "lstm"  # no encoder: the paper's recorded, so FT's fingerprint never moves with it
    assert output_dir(tmp_path, "b", _config("ptuning", encoder="lstm")) == tmp_path / "lama/b/ptuning-lstm-29k"
    cb = dict(task="cb", setting="fewshot")
    assert superglue.output_dir(tmp_path, "b", SuperGLUEConfig(method="ptuning", **cb)).name == "ptuning"
    assert superglue.output_dir(tmp_path, "b", SuperGLUEConfig(method="ptuning-frozen", encoder="mlp", **cb)).name == \
        "ptuning-frozen-mlp"
    assert superglue.output_dir(tmp_path, "b", SuperGLUEConfig(method="mp-ft", preset="paper", **cb)).name == \
        "mp-ft-paper"

    def result(method: str, **config) -> Result:
        return Result(path=tmp_path / "x.json", display="x", kind="lama", backbone="b", backbone_name="b",
                      backbone_kind="causal", method=method, setting="29k", task="lama", metrics={},
                      preset=config.pop("preset", "cpu"), config=config)

    assert variant_label(result("ptuning", encoder="lstm")) == ""
    assert variant_label(result("mp", encoder="lstm", preset="paper")) == " (paper preset)"
    assert variant_label(result("ptuning", encoder="mlp", preset="paper")) == " (encoder mlp, paper preset)"
