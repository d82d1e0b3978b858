"""Checkpoints are safetensors + a JSON state + a sha256: nothing in them runs code, and one that cannot be
trusted is set aside (`.rejected`) with a warning while the run starts over (issue 16, item 2)."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from repro import checkpoint
from repro.core.training import CHECKPOINT, TrainConfig, rng_state, set_rng_state, set_seed, train


class Planted:
    """A pickle whose loading would create `marker` (what a planted `train_state.pt` did before)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Toy(nn.Module):
    """The smallest model `train` accepts: a trainable 'encoder' and a frozen 'lm' weight."""

    def __init__(self) -> None:
        super().__init__()
        set_seed(5)
        self.encoder = nn.Linear(3, 2)
        self.lm = nn.Linear(2, 1)
        self.lm.requires_grad_(False)

    def trainable_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"encoder": list(self.encoder.parameters())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm(torch.tanh(nn.functional.dropout(self.encoder(x), 0.1, self.training)))


ITEMS = [(torch.tensor([i / 7, (i % 3) / 2, 1.0]), torch.tensor([math.sin(i)])) for i in range(10)]
CONFIG = TrainConfig(optimizer="adam", lr_encoder=0.05, schedule="exponential", gamma=0.9, batch_size=3,
                     max_epochs=5, patience=10, seed=3)


class Interrupt(Exception):
    pass


def _mse(model: Toy, batch) -> torch.Tensor:
    x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    return ((model(x) - y) ** 2).mean()


def _fit(checkpoint_dir=None, stop_at=None):
    """Train a fresh Toy (a new process, as far as the model goes); `stop_at`: interrupt at that loss call."""
    model = Toy()
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise Interrupt()
        return _mse(model, batch)

    def evaluate():
        model.eval()
        with torch.no_grad():
            return -float(_mse(model, ITEMS))

    outcome = train(model, ITEMS, loss_fn, evaluate, CONFIG, checkpoint_dir=checkpoint_dir, quiet=True)
    return outcome, {k: v.clone() for k, v in model.encoder.state_dict().items()}


def _same(a, b) -> None:
    assert a[0].history == b[0].history and (a[0].best_score, a[0].best_step) == (b[0].best_score, b[0].best_step)
    for key in a[1]:
        assert torch.equal(a[1][key], b[1][key]), key


def _interrupted(folder: Path) -> Path:
    with pytest.raises(Interrupt):
        _fit(folder, stop_at=9)  # after two epoch checkpoints (4 steps per epoch)
    assert (folder / CHECKPOINT).is_file()
    return folder / CHECKPOINT


def test_resume_from_a_safe_checkpoint_gives_identical_numbers(tmp_path):
    straight = _fit()
    _interrupted(tmp_path)
    resumed = _fit(tmp_path)
    assert resumed[0].resumed_from_step == 8
    _same(resumed, straight)


def test_planted_pickle_is_never_executed_and_the_run_starts_over(tmp_path, capsys):
    marker = tmp_path / "marker"
    with open(tmp_path / CHECKPOINT, "wb") as handle:
        pickle.dump({"fingerprint": CONFIG.fingerprint(), "loop": Planted(marker)}, handle)
    torch.save({"x": Planted(marker)}, tmp_path / "other.pt")  # the torch.save flavour, for `load` below
    straight = _fit()
    capsys.readouterr()
    rerun = _fit(tmp_path)
    warning = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists(), "the pickle's code ran"
    assert rerun[0].resumed_from_step == 0
    _same(rerun, straight)
    assert (tmp_path / (CHECKPOINT + ".rejected")).is_file()
    assert len(warning) == 1 and "not a safetensors checkpoint" in warning[0] and "set aside" in warning[0]
    assert checkpoint.load(tmp_path / "other.pt", kind="train_state") is None and not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip a tensor byte", "flip a state byte"])
def test_damaged_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, capsys, damage):
    path = _interrupted(tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip a tensor byte":
        raw[-3] ^= 0x01
    else:  # inside the JSON state in the header: a digit of the recorded loss history
        key = rb'\"loss\":'  # the state is a JSON string inside the safetensors header: its quotes escaped
        at = raw.index(key) + len(key) + 3
        raw[at] = ord("7") if raw[at] != ord("7") else ord("8")
    path.write_bytes(bytes(raw))
    straight = _fit()
    capsys.readouterr()
    rerun = _fit(tmp_path)
    assert rerun[0].resumed_from_step == 0
    _same(rerun, straight)
    assert (tmp_path / (CHECKPOINT + ".rejected")).is_file()
    assert "set aside" in capsys.readouterr().err


def test_checkpoint_of_another_kind_or_shape_is_set_aside(tmp_path, capsys):
    checkpoint.save(tmp_path / CHECKPOINT, {"units": {}}, kind="joint_state")
    assert checkpoint.load(tmp_path / CHECKPOINT, kind="train_state") is None
    assert "'joint_state'" in capsys.readouterr().err
    # right kind and settings, but parameters of another model: the model is left as it was, the run starts over
    checkpoint.save(tmp_path / CHECKPOINT, {"fingerprint": CONFIG.fingerprint(), "loop": {}, "best_state": None,
                                            "trainable": {"encoder.weight": torch.zeros(5, 5)}, "optimizer": {},
                                            "scheduler": {}, "rng": rng_state()}, kind="train_state")
    _same(_fit(tmp_path), _fit())
    assert "does not fit this model" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if "rejected" in p.name) == [
        CHECKPOINT + ".rejected", CHECKPOINT + ".rejected.1"]


def test_round_trip_of_every_stored_kind_of_value(tmp_path):
    set_seed(1)
    state = rng_state()
    draws = (torch.rand(3), np.random.rand(3), random.random())
    payload = {
        "rng": state, "tuple": (1, (2.5, "x"), None), "int_keys": {0: {"step": torch.tensor(3.0)}, 7: [True]},
        "inf": -math.inf, "bf16": torch.randn(4, 3).to(torch.bfloat16), "empty": torch.zeros(0),
        "np": np.arange(6, dtype=np.int64).reshape(2, 3), "npfloat": np.float32(0.25),
    }
    checkpoint.save(tmp_path / "c", payload, kind="test")
    back = checkpoint.load(tmp_path / "c", kind="test")
    assert back["tuple"] == (1, (2.5, "x"), None) and back["inf"] == -math.inf and back["npfloat"] == 0.25
    assert list(back["int_keys"]) == [0, 7] and torch.equal(back["int_keys"][0]["step"], torch.tensor(3.0))
    assert back["bf16"].dtype == torch.bfloat16 and torch.equal(back["bf16"], payload["bf16"])
    assert back["empty"].shape == (0,) and np.array_equal(back["np"], payload["np"])
    set_rng_state(back["rng"])  # the RNG streams continue exactly where they were saved
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]
    with pytest.raises(TypeError, match="tensors and plain values only"):
        checkpoint.save(tmp_path / "d", {"f": object()}, kind="test")
    assert not (tmp_path / "d").exists()


def test_atomic_writes_give_the_permissions_a_plain_write_would(tmp_path):
    """mkstemp creates 0600 files; a result file must be readable as one written with open() is."""
    import os

    from repro.atomic import atomic_write_json

    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    written = atomic_write_json(tmp_path / "result.json", {"a": 1})
    assert os.stat(written).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
