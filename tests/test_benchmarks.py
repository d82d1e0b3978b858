"""The benchmark scripts keep running against the engine they measure (a new argument of the LAMA driver's
`RelationUnit` once broke `benchmarks/lama_joint.py` unnoticed): their measured variants run here on a tiny
backbone and the real LAMA files, in fp32, where joint and separate training must agree."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from repro.core.model import PromptedLM

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restored(monkeypatch):
    """The benchmarks set torch's threads and patch the prompted LM's forward (to count FLOPs): undone after."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(PromptedLM, "target_hidden", PromptedLM.target_hidden)
    yield
    torch.set_num_threads(threads)


def test_lama_joint_benchmark_trains_both_ways_alike_in_fp32(tiny_dirs, shared_data, restored):
    """Both variants of `benchmarks/lama_joint.py` on the cpu preset's schedule (32 steps of 16 facts, dev checks,
    test P@1): in fp32 the joint pass gives every relation separate training's P@1 and runs the same rows, so
    the FLOP counts behind the printed rates agree."""
    bench = _script("lama_joint")
    args = argparse.Namespace(backbone=str(tiny_dirs["gpt2"]), relations="P101,P1376", threads=1, max_test=24,
                              data_root=str(shared_data), dtype="float32")
    forward = PromptedLM.target_hidden
    separate = bench.run_variant("separate", args)
    PromptedLM.target_hidden = forward  # the benchmark runs each variant in its own process, with its own counter
    joint = bench.run_variant("joint", args)
    assert separate["train_facts"] == joint["train_facts"] == 2 * 32 * 16
    assert separate["rows"] == joint["rows"] and separate["rows"]["test"] == separate["test_facts"] > 0
    assert joint["flops"] == pytest.approx(separate["flops"])
    assert joint["p_at_1"] == separate["p_at_1"] and set(joint["p_at_1"]) == {"P101", "P1376"}
    assert joint["best_steps"] == separate["best_steps"]
    report = {"backbone": "tiny", "relations": ["P101", "P1376"], "dtype": "float32", "cpu": "cpu", "threads": 1,
              "load_average_before": 0.0, "load_average_after": 0.0, "matmul_peak_gflops": {"before": 1.0, "after": 1.0},
              "variants": {"separate": separate, "joint": joint},
              "speedup_train": separate["train_s"] / joint["train_s"],
              "speedup_train_cpu": separate["train_cpu_s"] / joint["train_cpu_s"]}
    assert "P1376" in bench.format_report(report)


def test_recompute_memory_benchmark_runs_the_real_command_both_ways(tiny_dirs, shared_data, tmp_path):
    """`benchmarks/recompute_memory.py` runs supervised PET-FT through the CLI with and without
    `--recompute-activations` in child processes and reports each child's memory; on a tiny Llama the two result
    files hold the same numbers (the script exits non-zero when they do not)."""
    bench = _script("recompute_memory")
    out = tmp_path / "recompute_memory.json"
    argv = ["recompute_memory.py", "--backbone", str(tiny_dirs["llama"]), "--task", "cb", "--steps", "2",
            "--data-root", str(shared_data), "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", argv)
        assert bench.main() == 0
    report = json.loads(out.read_text())
    assert report["same_numbers"] is True
    assert set(report["variants"]) == {"plain", "recompute"}
    assert all(v["peak_rss_mib"] > 0 and v["seed_s"] > 0 for v in report["variants"].values())
    assert "same numbers: True" in out.with_suffix(".txt").read_text()


def test_lama_speed_training_step_variants_train_on_a_tiny_llama(load_tiny, shared_data, restored):
    """Each training-step variant `benchmarks/lama_speed.py` times (PEFT's, PEFT's under our attention kernel,
    ours in fp32 and bf16) builds against the engine and the real P17 facts and trains: its loss is finite and
    moves after an optimizer step. The learning rate of 1e-5 moves a tiny model's loss only slightly, so the
    check is that it moves at all."""
    bench = _script("lama_speed")
    for name in bench.STEP_DTYPES:
        step = bench.make_train_step(name, load_tiny("llama"), shared_data, 4, "mlp")
        first, second = step(), step()
        assert torch.isfinite(torch.tensor([first, second])).all() and first != second, name


def test_lama_speed_refuses_to_start_without_peft(monkeypatch, capsys, restored):
    """The PEFT step is timed last, after minutes of evaluation: without peft (the main job's environment leaves
    it out) the script stops at once and says how to install it, instead of failing at the end."""
    bench = _script("lama_speed")
    monkeypatch.setitem(sys.modules, "peft", None)  # importlib finds no peft
    monkeypatch.setattr("sys.argv", ["lama_speed.py", "--limit", "1000"])
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 2 and "pip install -c constraints.txt peft" in capsys.readouterr().err


def test_length_parts_benchmark_cuts_real_rte_batches_to_less_padding(tiny_dirs, shared_data, tmp_path, restored):
    """`benchmarks/length_parts.py` on FewGLUE RTE batches and a tiny Llama: the cut variant runs fewer padded
    tokens in more passes, and its gradients are the one-pass ones up to bf16 rounding."""
    bench = _script("length_parts")
    out = tmp_path / "length_parts.json"
    argv = ["length_parts.py", "--backbone", str(tiny_dirs["llama"]), "--task", "rte", "--batches", "2",
            "--max-tokens", "256", "--data-root", str(shared_data), "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", argv)
        patch.setattr(bench, "matmul_peak_gflops", lambda dtype: 1.0)  # the 4096-square GEMM is not the point
        assert bench.main() == 0
    report = json.loads(out.read_text())
    one, cut = report["variants"]["one pass"], report["variants"]["cut"]
    assert report["real_tokens"] <= cut["padded_tokens"] < one["padded_tokens"]
    assert one["passes"] == 2 < cut["passes"]
    assert report["gradient_relative_difference_max"] < 2e-2 and report["speedup"] > 0


def test_fewshot_seed_benchmark_splits_a_real_seed_into_phases(tiny_dirs, shared_data, tmp_path, restored,
                                                              monkeypatch):
    """`benchmarks/fewshot_seed.py` runs one CB seed through the engine on a tiny Llama: every phase is timed, the
    phases add up to the seed, and the counted tokens behave as the recipe says (training pads, its forwards
    carry a backward twice their cost with the LM trained, the dev checks and evaluation run without one)."""
    from repro.experiment import engine

    monkeypatch.setattr(engine, "train", engine.train)  # the benchmark routes both through its phases: undone after
    monkeypatch.setattr(engine, "predict", engine.predict)
    bench = _script("fewshot_seed")
    out = tmp_path / "fewshot_seed.json"
    argv = ["fewshot_seed.py", "--backbone", str(tiny_dirs["llama"]), "--task", "cb", "--data-root",
            str(shared_data), "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda dtype: 1.0)
    assert bench.main() == 0
    report = json.loads(out.read_text())
    phases = report["phases"]
    assert set(phases) == set(bench.PHASES)
    assert sum(p["s"] for p in phases.values()) == pytest.approx(report["seed_s"], abs=0.5)
    train, dev, final = phases["training steps"], phases["dev32 checks"], phases["final evaluation"]
    for phase in (train, dev, final):
        assert 0 < phase["real_tokens"] <= phase["padded_tokens"] and phase["s"] > 0
    assert train["real_tokens"] < train["padded_tokens"]  # CB's batches of 8 pad to their longest input
    per_token = {name: p["gflop"] / p["padded_tokens"] for name, p in (("train", train), ("final", final))}
    assert per_token["train"] == pytest.approx(3 * per_token["final"], rel=0.3)  # forward + 2x backward
    assert phases["start-up"]["padded_tokens"] == 0 and report["floor_s"] > 0
    assert set(report["metrics"]["cb"]) == {"acc", "f1_macro"}


def test_fewshot_script_time_tables_a_rerun_against_the_committed_files(tmp_path, monkeypatch):
    """`benchmarks/fewshot_script_time.py` reads a rerun's result files and the committed ones: a rerun whose CB
    took half the committed command's time is 2x, and the diagnostics (AX-b, AX-g: RTE's run) are not tasks."""
    bench = _script("fewshot_script_time")
    rel = Path("superglue") / "fewshot" / "smollm2-135m" / "ptuning"
    committed = json.loads((ROOT / "results" / rel / "cb.json").read_text())
    (tmp_path / rel).mkdir(parents=True)
    (tmp_path / rel / "cb.json").write_text(json.dumps({**committed, "wall_time_s": committed["wall_time_s"] / 2}))
    (tmp_path / rel / "axb.json").write_text(json.dumps(committed))
    out = tmp_path / "time.json"
    monkeypatch.setattr("sys.argv", ["fewshot_script_time.py", "--rerun", str(tmp_path), "--before", "HEAD",
                                     "--out", str(out)])
    assert bench.main() == 0
    report = json.loads(out.read_text())
    assert list(report["tasks"]) == ["cb"]
    assert report["tasks"]["cb"]["speedup"] == pytest.approx(2.0, abs=0.01)
    assert report["tasks"]["cb"]["rerun"]["mean"] == report["tasks"]["cb"]["before"]["mean"]


def test_autocast_region_benchmark_times_both_variants_on_real_record_items(load_tiny, shared_data, tmp_path,
                                                                             restored):
    """`benchmarks/autocast_region.py` on a tiny Llama (LM trained in bf16 autocast) and real FewGLUE ReCoRD
    items: both variants give the same loss and predictions (the same casts), gradients close but not equal."""
    bench = _script("autocast_region")
    torch.set_num_threads(1)
    scorer, task = bench.build("unused", "record", backbone=load_tiny("llama"))
    assert isinstance(scorer.model.precision(), torch.autocast)  # a trained LM in bf16
    result = bench.measure(scorer, task, shared_data, items=2, examples=4, rounds=1)
    assert result["train_items"] == 2 and result["eval_examples"] == 4 and result["eval_file"] == "dev32.jsonl"
    assert all(len(result["seconds"][part][v]) == 1 for part in ("train", "eval") for v in bench.VARIANTS)
    assert result["loss"]["plain"] == result["loss"]["outer"]
    assert result["same_predictions"]
    assert 0 < result["relative_grad_difference"] < 0.05
    report = {"task": "record", "backbone": "tiny", "cpu": "cpu", "threads": 1, "commit": None,
              "load_average_before": 0.0, "load_average_after": 0.0, **result, "command": "x"}
    assert "loss + backward, 2 items" in bench.format_report(report)


def test_benchmark_reports_name_the_commit_cpu_and_date(tmp_path, capsys):
    """Every benchmark's JSON says which code, CPU and day measured it (the Intel figures of 2026-12-04 had to be
    dated in REPRODUCING by hand); a benchmark that records its own commit keeps it."""
    _script("lama_speed")  # puts the checkout on the path, as the scripts run
    from benchmarks.machine import cpu_model, write_report
    write_report(tmp_path / "bench.json", {"rate": 1.0}, "table")
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["rate"] == 1.0 and written["cpu"] == cpu_model()
    assert written["commit"] and len(written["commit"].removesuffix("-dirty")) == 40
    assert written["date"].endswith(" UTC") and written["date"][:4].isdigit()
    write_report(tmp_path / "own.json", {"commit": "abc"}, "table")
    assert json.loads((tmp_path / "own.json").read_text())["commit"] == "abc"
    assert (tmp_path / "own.txt").read_text() == "table\n" and "table" in capsys.readouterr().out
