"""Joint training of many prompt encoders on one frozen LM equals training each alone (repro.core.joint,
repro.experiment.joint, the LAMA driver's joint pass), and resumes with the same numbers."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

import tiny
from repro import checkpoint
from repro.core.joint import CHECKPOINT
from repro.core.template import Template
from repro.core.training import TrainConfig
from repro.experiment import engine
from repro.experiment import joint as joint_engine
from repro.experiment.joint import Member, build_joint, fit_together, predict_together
from repro.experiment.lama import PRESETS, LamaConfig, run_lama, run_name
from repro.methods import get_method
from repro.ptuning import PromptEncoder, paper_lstm_config
from repro.tasks import lama as lama_data
from repro.tasks.base import Example

PTUNING = get_method("ptuning", "lama")
# Different sizes, seeds and templates (prompt counts), evaluated per epoch: the units end at different steps.
UNITS = [("A", 8, 34, "[P*3] {sub} [P*3] [MASK]"), ("B", 20, 35, "[P*2] {sub} [MASK]"),
         ("C", 36, 36, "[P*3] {sub} [P*3] [MASK]")]
MASKED_TEMPLATES = {"[P*3] {sub} [P*3] [MASK]": "[P*3] {sub} [P*3] [MASK] [P*3]",
                    "[P*2] {sub} [MASK]": "[P*2] {sub} [MASK]"}
TRAIN = TrainConfig(optimizer="adam", lr_encoder=3e-2, schedule="linear", warmup_ratio=0.25, batch_size=4, max_epochs=3,
                    patience=2, seed=0)


def _vocab(tokenizer) -> lama_data.AllowedVocab:
    words = sorted({w for line in tiny.corpus() for w in re.findall(r"[a-z]+", line)})
    ids = lama_data.single_token_ids(tokenizer, words, space_before=True)
    kept = {w: i for w, i in zip(words, ids) if i is not None}
    pairs = sorted({i: w for w, i in kept.items()}.items())[:40]  # one word per id, 40 words
    return lama_data.AllowedVocab("test", tuple(i for i, _ in pairs), {w: i for i, w in pairs}, "40 corpus words")


def _setup(backbone, *, dtype="float32", encoder="lstm"):
    """Members (tasks on one hand-made vocabulary), their train/dev/test examples, and the run config."""
    vocab = _vocab(backbone.tokenizer)
    words = list(vocab.word_to_id)
    members, data = [], []
    for name, n, seed, text in UNITS:
        relation = lama_data.Relation(name, name, "[X] is [Y] .")
        spec = text if backbone.is_causal else MASKED_TEMPLATES[text]
        offset = {"A": 0, "B": 7, "C": 13}[name]
        facts = [Example(f"{name}:{i}", {"sub": words[(i + offset) % len(words)]},
                         words[(3 * i + offset + 1) % len(words)]) for i in range(n)]
        members.append(Member(name, lama_data.Lama(relation, vocab), Template.parse(spec), "ptuning", seed))
        data.append((facts, facts[: max(4, n // 3)], facts))
    config = LamaConfig(method="ptuning", dtype=dtype, eval_batch_size=8, train=TRAIN, relations=["P17"],
                        encoder=encoder)
    return members, data, config


def _separately(backbone, members, data, config, train_config):
    """engine.build_scorer + engine.fit per member, recording every step's loss; test predictions."""
    out = []
    for m, (train, dev, test) in zip(members, data):
        scorer = engine.build_scorer(m.task, PTUNING, backbone, m.template, "ptuning", config, m.seed, max_length=None,
                                     quiet=True)
        losses = []
        real = scorer.loss

        def recording(items, real=real, losses=losses):
            loss = real(items)
            losses.append(float(loss.detach()))
            return loss

        scorer.loss = recording
        fitted = engine.fit(scorer, m.task, train, dev, train_config, m.seed, checkpoint_dir=None, desc=m.name,
                            quiet=True)
        out.append((fitted, losses, scorer.predict(test)))
    return out


def _jointly(backbone, members, data, config, train_config, monkeypatch, *, checkpoint_dir=None, fail_at=None,
             done_log=None, checkpoint_every_s=None):
    """build_joint + fit_together, recording each unit's loss per step; test predictions of every unit."""
    losses: dict[int, list[float]] = {i: [] for i in range(len(members))}
    real_train = joint_engine.train_joint

    def recording_train(model, units, loss_fn, evaluate, **kwargs):
        calls = {"n": 0}

        def wrapped(parts):
            calls["n"] += 1
            if fail_at is not None and calls["n"] == fail_at:
                raise Interrupted()
            values = loss_fn(parts)
            for (i, _), v in zip(parts, values):
                losses[i].append(float(v))
            return values

        return real_train(model, units, wrapped, evaluate, **kwargs)

    joint = build_joint(members, PTUNING, backbone, config, max_length=None, quiet=True)

    def on_done(indices, fitted):
        if done_log is not None:
            done_log.append([members[i].name for i in indices])

    monkeypatch.setattr(joint_engine, "train_joint", recording_train)
    try:
        fitted = fit_together(joint, members, [d[0] for d in data], [d[1] for d in data], train_config,
                              checkpoint_dir=checkpoint_dir, on_done=on_done, quiet=True,
                              checkpoint_every_s=checkpoint_every_s)
    finally:
        monkeypatch.setattr(joint_engine, "train_joint", real_train)
    predictions = predict_together(joint.scorers, [d[2] for d in data])
    return fitted, losses, predictions


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("name, encoder", [("gpt2", "lstm"), ("bert", "lstm"), ("gpt2", "none")])
def test_joint_training_equals_separate_training(load_tiny, monkeypatch, name, encoder):
    monkeypatch.setattr(joint_engine, "CHUNK_TOKENS", 48)  # a joint step in several length-sorted passes
    backbone = load_tiny(name)
    members, data, config = _setup(backbone, encoder=encoder)
    joint = build_joint(members, PTUNING, backbone, config, max_length=None, quiet=True)
    assert {e.encoder_type.value for e in joint.stack.encoders} == {encoder.upper()}  # the encoders asked for
    # N(0, 1) prompt rows trained directly barely move at the heads' 3e-2 (dev P@1 stays 0): a larger step
    train = replace(TRAIN, lr_encoder=0.3) if encoder == "none" else TRAIN
    separate = _separately(backbone, members, data, config, train)
    done_log: list[list[str]] = []
    fitted, losses, predictions = _jointly(backbone, members, data, config, train, monkeypatch, done_log=done_log)
    steps = [f["steps"] for f in fitted]
    assert len(set(steps)) == len(steps)  # the units left the joint batch at different steps
    by_end = sorted(range(len(steps)), key=steps.__getitem__)
    assert done_log == [[members[i].name] for i in by_end]  # each handed over as it finished
    for i, (sep_fit, sep_losses, sep_pred) in enumerate(separate):
        assert losses[i] == pytest.approx(sep_losses, rel=1e-5)  # fp32 rounding (padding differs), carried by Adam
        assert len(losses[i]) == sep_fit["steps"] == fitted[i]["steps"]
        assert fitted[i]["best_step"] == sep_fit["best_step"]
        assert fitted[i]["stopped_early"] == sep_fit["stopped_early"]
        assert [h["dev"] for h in fitted[i]["history"]] == [h["dev"] for h in sep_fit["history"]]
        assert predictions[i] == sep_pred
    assert any(any(a != b for a, b in zip(p, q)) for p, q in zip(predictions, predictions[1:]))  # encoders differ
    assert max(fitted[i]["best_dev"] for i in range(len(members))) > 0  # the tiny LM learned something


def test_max_batch_tokens_cuts_joint_and_separate_steps_alike(load_tiny, monkeypatch):
    """`max_batch_tokens` (--max-batch-tokens): the joint step's passes take it in place of CHUNK_TOKENS, and a
    separate run cuts each batch by it (`training.length_parts`); both still train to the same numbers."""
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    cut = replace(TRAIN, max_batch_tokens=8)
    budgets: list[int] = []
    real_cut = joint_engine.length_batches

    def spying(items, rows, tokens, **kw):
        budgets.append(tokens)
        return real_cut(items, rows, tokens, **kw)

    monkeypatch.setattr(joint_engine, "length_batches", spying)
    separate = _separately(backbone, members, data, config, cut)
    fitted, _, predictions = _jointly(backbone, members, data, config, cut, monkeypatch)
    assert budgets and set(budgets) == {8}
    for i, (sep_fit, sep_passes, sep_pred) in enumerate(separate):
        assert len(sep_passes) > sep_fit["steps"]  # the separate run's batches were cut into several passes
        assert fitted[i]["best_step"] == sep_fit["best_step"]
        assert [h["dev"] for h in fitted[i]["history"]] == pytest.approx([h["dev"] for h in sep_fit["history"]])
        assert predictions[i] == sep_pred


def test_gradient_clipping_is_per_unit_as_in_separate_training(load_tiny, monkeypatch):
    """The cpu LAMA preset clips each encoder's gradient (max_grad_norm): jointly, each unit is clipped by its own
    norm, as it would be alone (a norm over all units' gradients would scale each by the others')."""
    monkeypatch.setattr(joint_engine, "CHUNK_TOKENS", 48)
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    clipped = replace(TRAIN, max_grad_norm=1e-3)  # binds at every step
    separate = _separately(backbone, members, data, config, clipped)
    fitted, losses, predictions = _jointly(backbone, members, data, config, clipped, monkeypatch)
    for i, (sep_fit, sep_losses, sep_pred) in enumerate(separate):
        assert losses[i] == pytest.approx(sep_losses, rel=1e-5)
        assert [h["dev"] for h in fitted[i]["history"]] == [h["dev"] for h in sep_fit["history"]]
        assert predictions[i] == sep_pred
    unclipped = _separately(backbone, members, data, config, TRAIN)
    assert any(c[1] != pytest.approx(u[1], rel=1e-3) for c, u in zip(separate, unclipped))  # the clip changed training


def test_encoder_dropout_draws_as_in_separate_training(load_tiny, monkeypatch):
    """Each encoder runs under its own RNG state: with dropout between LSTM layers, losses still match."""
    def dropout_encoder(n, backbone, config):
        return PromptEncoder(paper_lstm_config(n, backbone.hidden_size, encoder_dropout=0.5))

    monkeypatch.setattr(engine, "new_encoder", dropout_encoder)
    monkeypatch.setattr(joint_engine, "new_encoder", dropout_encoder)
    monkeypatch.setattr(joint_engine, "CHUNK_TOKENS", 48)  # several passes, still one dropout draw per step
    backbone = load_tiny("llama")
    members, data, config = _setup(backbone)
    short = replace(TRAIN, max_epochs=1)
    separate = _separately(backbone, members, data, config, short)
    _, losses, predictions = _jointly(backbone, members, data, config, short, monkeypatch)
    for i, (_, sep_losses, sep_pred) in enumerate(separate):
        assert losses[i] == pytest.approx(sep_losses, rel=1e-5)  # fp32 rounding (padding differs), carried by Adam
        assert predictions[i] == sep_pred
    # and the dropout does draw (the equality above is not vacuous): without it, other losses
    monkeypatch.undo()
    plain = _separately(backbone, members[:1], data[:1], config, short)
    assert plain[0][1] != pytest.approx(separate[0][1], abs=1e-5)


def _same_as_straight(resumed: dict, straight: dict, resumed_pred, straight_pred) -> None:
    """A resumed unit's fit (all but where it resumed from) and predictions equal the uninterrupted run's."""
    assert {k: v for k, v in resumed.items() if k != "resumed_from_step"} == \
        {k: v for k, v in straight.items() if k != "resumed_from_step"}
    assert resumed_pred == straight_pred


def test_interrupted_joint_training_resumes_with_the_same_numbers(load_tiny, monkeypatch, tmp_path):
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    straight, straight_losses, straight_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch)
    first_end = min(f["steps"] for f in straight)
    # 1. interrupted after the first unit finished (and was handed over), mid-way for the others
    done_log: list[list[str]] = []
    with pytest.raises(Interrupted):
        _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path, fail_at=first_end + 2,
                 done_log=done_log)
    assert done_log == [[members[min(range(3), key=lambda i: straight[i]["steps"])].name]]
    # the last checkpoint (written as the first unit finished) holds its best state alone, the others' tensors
    # once each
    saved = checkpoint.read(tmp_path / CHECKPOINT, kind="joint_state")["units"]
    assert set(saved[done_log[0][0]]) == {"fingerprint", "loop", "best_state"}
    for name, entry in saved.items():
        if name not in done_log[0]:
            evaluated = bool(entry["loop"]["history"])
            just_kept = evaluated and entry["loop"]["best_step"] == entry["loop"]["step"]
            assert entry["best_is_trainable"] == just_kept
            assert (entry["best_state"] is None) == (just_kept or not evaluated)
    # the driver skips what it wrote: resume with the remaining units only
    rest = [i for i, m in enumerate(members) if m.name not in done_log[0]]
    resumed, resumed_losses, resumed_pred = _jointly(backbone, [members[i] for i in rest], [data[i] for i in rest],
                                                     config, TRAIN, monkeypatch, checkpoint_dir=tmp_path)
    for j, i in enumerate(rest):
        assert resumed[j]["resumed_from_step"] > 0
        _same_as_straight(resumed[j], straight[i], resumed_pred[j], straight_pred[i])
        assert resumed_losses[j] == pytest.approx(straight_losses[i][resumed[j]["resumed_from_step"]:], abs=1e-6)


def test_checkpoint_stores_each_tensor_once_and_resumes_with_the_same_numbers(load_tiny, monkeypatch, tmp_path):
    """Interrupted at the step after unit A's first evaluation (2 steps per epoch): the checkpoint stored A's best
    state only as its current parameters; the resumed run still restores it at the end, with the same numbers."""
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    straight, _, straight_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch)
    with pytest.raises(Interrupted):
        _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path, fail_at=3)
    saved = checkpoint.read(tmp_path / CHECKPOINT, kind="joint_state")["units"]
    assert saved["A"]["best_is_trainable"] and saved["A"]["best_state"] is None
    resumed, _, resumed_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path)
    # and a checkpoint written after a unit was handed over leaves it out
    first_end = min(f["steps"] for f in straight)
    later = min(h["step"] for f in straight for h in f["history"] if h["step"] > first_end)
    with pytest.raises(Interrupted):
        _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path / "later",
                 fail_at=later + 1)
    saved = checkpoint.read(tmp_path / "later" / CHECKPOINT, kind="joint_state")["units"]
    assert sorted(saved) == sorted(m.name for m, f in zip(members, straight) if f["steps"] > first_end)
    assert resumed[0]["resumed_from_step"] == 2
    for i in range(3):
        _same_as_straight(resumed[i], straight[i], resumed_pred[i], straight_pred[i])


def test_timed_checkpoints_resume_the_joint_pass_between_checks(load_tiny, monkeypatch, tmp_path):
    """With `checkpoint_every_s` the joint pass also checkpoints between dev checks (here after every step): cut at
    step 4 (unit A's last check was step 2, B and C have had none), every unit resumes from step 3 with the same
    numbers."""
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    straight, _, straight_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch)
    with pytest.raises(Interrupted):
        _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path, fail_at=4,
                 checkpoint_every_s=0.0)
    resumed, _, resumed_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path,
                                        checkpoint_every_s=0.0)
    assert [r["resumed_from_step"] for r in resumed] == [3, 3, 3]
    for i in range(3):
        _same_as_straight(resumed[i], straight[i], resumed_pred[i], straight_pred[i])


def test_unit_finished_but_not_written_is_handed_over_on_resume(load_tiny, monkeypatch, tmp_path):
    """Interrupted while the caller writes a finished unit: the checkpoint kept its best state, so the rerun hands
    it over first, with the same numbers, and continues the others."""
    backbone = load_tiny("gpt2")
    members, data, config = _setup(backbone)
    straight, _, straight_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch)

    class Failing(list):
        def append(self, item):
            raise Interrupted()

    with pytest.raises(Interrupted):
        _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path, done_log=Failing())
    done_log: list[list[str]] = []
    resumed, _, resumed_pred = _jointly(backbone, members, data, config, TRAIN, monkeypatch, checkpoint_dir=tmp_path,
                                        done_log=done_log)
    first = min(range(3), key=lambda i: straight[i]["steps"])
    assert done_log[0] == [members[first].name]
    assert resumed[first]["resumed_from_step"] == straight[first]["steps"]
    for i in range(3):
        assert resumed[i]["history"] == straight[i]["history"] and resumed[i]["best_step"] == straight[i]["best_step"]
        assert resumed_pred[i] == straight_pred[i]


# ------------------------------------------------------------------------------------------------ the LAMA driver
RELATIONS = ["P101", "P1376", "P47", "P19"]  # P47 has no train/dev files: skipped in both schedules
TINY_TRAIN = replace(PRESETS["cpu"].train, max_steps=4, eval_every_steps=2, batch_size=4, lr_encoder=1e-2)
PROVENANCE = {"environment", "command", "git_commit", "cpu_model", "date", "wall_time_s", "shared_pass"}


def _same_result(a: dict, b: dict) -> None:
    """Equal result files but for provenance; training losses within fp32 rounding (batches are padded alike
    only within a schedule)."""
    strip = lambda d: {k: v for k, v in d.items() if k not in PROVENANCE | {"training"}}  # noqa: E731
    assert strip(a) == strip(b)
    assert ("training" in a) == ("training" in b)
    if "training" in a:
        ta, tb = dict(a["training"]), dict(b["training"])
        ha, hb = ta.pop("history"), tb.pop("history")
        assert ta == tb
        assert [{k: v for k, v in h.items() if k != "loss"} for h in ha] == \
            [{k: v for k, v in h.items() if k != "loss"} for h in hb]
        assert [h["loss"] for h in ha] == pytest.approx([h["loss"] for h in hb], rel=1e-5)


def _lama(load_tiny, shared_data, where: Path, method: str, *, sequential: bool, name: str = "gpt2",
          encoder: str = "lstm"):
    config = LamaConfig(method=method, relations=RELATIONS, train=TINY_TRAIN, max_train=12, max_dev=8,
                        dtype="float32", eval_batch_size=16, sequential=sequential, encoder=encoder)
    summary = run_lama(config, root=shared_data, results_root=where / "results", runs_root=where / "runs",
                       backbone=load_tiny(name), quiet=True)
    out = where / "results" / "lama" / name / run_name(config)
    files = {rel: json.loads((out / f"{rel}.json").read_text()) for rel in RELATIONS}
    return summary, files


@pytest.mark.parametrize("method, encoder", [("ptuning", "lstm"), ("ptuning", "mlp"), ("mp", "lstm"), ("ptuning", "none")])
def test_run_lama_joint_and_sequential_write_the_same_results(load_tiny, shared_data, tmp_path, method, encoder):
    seq_summary, seq = _lama(load_tiny, shared_data, tmp_path / "seq", method, sequential=True, encoder=encoder)
    joint_summary, joint = _lama(load_tiny, shared_data, tmp_path / "joint", method, sequential=False, encoder=encoder)
    assert joint["P101"]["config"]["encoder"] == joint_summary["config"]["encoder"] == encoder
    for rel in RELATIONS:
        _same_result(joint[rel], seq[rel])
        assert ("shared_pass" in joint[rel]) == (method == "mp" or rel != "P47") and "shared_pass" not in seq[rel]
    assert joint["P101"]["shared_pass"]["relations"] == (4 if method == "mp" else 3)
    assert joint_summary["relations"] == seq_summary["relations"]
    assert joint_summary["macro_p_at_1"] == seq_summary["macro_p_at_1"]
    assert "sequential" not in joint["P101"]["config"]  # scheduling is not part of the recorded config
    run = run_name(LamaConfig(method=method, encoder=encoder))
    assert not (tmp_path / "joint" / "runs" / "lama" / "gpt2" / run / "_joint").exists()


def test_run_lama_joint_pass_resumes_after_an_interruption(load_tiny, shared_data, tmp_path, monkeypatch):
    _, straight = _lama(load_tiny, shared_data, tmp_path / "straight", "ptuning", sequential=False)
    real_train = joint_engine.train_joint

    def interrupting(model, units, losses, evaluate, **kwargs):
        calls = {"n": 0}

        def flaky(parts):
            calls["n"] += 1
            if calls["n"] == 3:  # after the checkpoint at step 2
                raise Interrupted()
            return losses(parts)

        return real_train(model, units, flaky, evaluate, **kwargs)

    monkeypatch.setattr(joint_engine, "train_joint", interrupting)
    with pytest.raises(Interrupted):
        _lama(load_tiny, shared_data, tmp_path / "resumed", "ptuning", sequential=False)
    runs = tmp_path / "resumed" / "runs" / "lama" / "gpt2" / run_name(LamaConfig(encoder="lstm")) / "_joint"
    assert len(list(runs.glob("*/joint_state.pt"))) == 1  # keyed by the pass's fingerprint fields
    monkeypatch.setattr(joint_engine, "train_joint", real_train)
    _, resumed = _lama(load_tiny, shared_data, tmp_path / "resumed", "ptuning", sequential=False)
    for rel in RELATIONS:
        strip = lambda d: {k: v for k, v in d.items() if k not in PROVENANCE}  # noqa: E731
        assert strip(resumed[rel]) == strip(straight[rel])  # same batches: exactly the same numbers
    assert not runs.exists()


# ------------------------------------------------------------------------------------------------ SuperGLUE seeds
def test_superglue_frozen_seeds_train_jointly_with_the_numbers_of_one_at_a_time(load_tiny, shared_data, tmp_path,
                                                                                monkeypatch):
    from repro.experiment.superglue import run_superglue
    from repro.experiment.superglue_config import SuperGLUEConfig

    def config(sequential: bool) -> SuperGLUEConfig:
        cfg = SuperGLUEConfig(task="cb", method="ptuning-frozen", preset="cpu", seeds=[42, 43, 44], max_train=6,
                              max_dev=4, max_eval=8, dtype="float32", sequential=sequential)
        cfg.train = replace(cfg.train, max_steps=4, batch_size=2, eval_every_steps=2, lr_encoder=1e-2)
        return cfg

    results = {}
    for sequential in (True, False):
        where = tmp_path / str(sequential)
        results[sequential] = run_superglue(config(sequential), root=shared_data, results_root=where / "results",
                                            runs_root=where / "runs", backbone=load_tiny("gpt2"), quiet=True)["cb"]
    seq, joint = results[True], results[False]
    assert joint["seeds"] == seq["seeds"] and joint["mean"] == seq["mean"]
    def without_history(training):
        return {seed: {k: v for k, v in t.items() if k != "history"} for seed, t in training.items()}

    assert without_history(joint["training"]) == without_history(seq["training"])  # best steps, dev scores, steps
    for seed, t in seq["training"].items():  # the same checks; losses of a joint pass equal within fp32 rounding
        joint_history = joint["training"][seed]["history"]
        assert [(h["step"], h["dev"]) for h in joint_history] == [(h["step"], h["dev"]) for h in t["history"]]
        assert [h["loss"] for h in joint_history] == pytest.approx([h["loss"] for h in t["history"]], abs=1e-5)
    seed_files = sorted((tmp_path / "False" / "runs").rglob("seed*.json"))
    assert len(seed_files) == 3 and all(json.loads(p.read_text())["shared_pass"]["seeds"] == 3 for p in seed_files)
    assert not list((tmp_path / "False" / "runs").rglob("joint_state.pt"))
