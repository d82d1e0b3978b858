"""The note before a run whose LM computes in a dtype this CPU multiplies slowly (float16 on most CPUs: the
authors' frozen LM, fidelity item frozen_lm_dtype=float16), and the measurement behind it."""

from __future__ import annotations

import pytest
import torch

from repro.core import cpu_rates
from repro.experiment.engine import Workspace
from repro.experiment.lama import LamaConfig


def test_matmul_rate_is_measured_per_dtype():
    assert cpu_rates.matmul_gflops(torch.float32, rows=8, inner=32, cols=32, reps=2) > 0
    assert cpu_rates.matmul_gflops(torch.float16, rows=8, inner=32, cols=32, reps=2) > 0


def rates(monkeypatch, fp16: float, fp32: float) -> None:
    monkeypatch.setattr(cpu_rates, "matmul_gflops", lambda dtype, **_: {torch.float16: fp16, torch.float32: fp32}[dtype])


def test_float16_on_a_slow_cpu_gets_a_note_naming_the_rates_and_the_way_out(monkeypatch):
    rates(monkeypatch, 1.7, 63.0)
    note = cpu_rates.slow_dtype_note("float16", "cpu")
    assert "1.7 GFLOP/s against 63.0 in float32" in note and "about 37x" in note
    assert "--fidelity-item frozen_lm_dtype=preset" in note
    rates(monkeypatch, 100.0, 92.0)  # a CPU with float16 kernels (the Intel Xeon measured 100 against 92)
    assert cpu_rates.slow_dtype_note("float16", "cpu") is None


def test_other_dtypes_and_gpus_are_not_measured(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(cpu_rates, "matmul_gflops", fail)
    for dtype, device in (("float32", "cpu"), ("bfloat16", "cpu"), ("float16", "cuda"), ("float16", "cuda:1")):
        assert cpu_rates.slow_dtype_note(dtype, device) is None


@pytest.mark.parametrize("fidelity, noted", [({}, True), ({"frozen_lm_dtype": "preset"}, False)])
def test_a_paper_preset_lama_run_prints_the_note_when_it_opens(load_tiny, monkeypatch, capsys, fidelity, noted):
    """The `paper` preset's LAMA P-tuning freezes the LM in float16 (the authors' code); `preset` keeps float32."""
    rates(monkeypatch, 1.7, 63.0)
    config = LamaConfig(method="ptuning", preset="paper", fidelity_items=fidelity)
    assert config.lm_dtype(config.method_entry) == ("float16" if noted else "float32")
    Workspace(threads=1).open(config, load_tiny("gpt2"))
    assert ("computes in float16" in capsys.readouterr().err) == noted
