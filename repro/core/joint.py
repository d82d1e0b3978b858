"""Joint training: many units (LAMA relations, SuperGLUE seeds) that share one frozen LM, trained in one pass.

Each unit keeps everything the single-unit loop (`repro.core.training.train`) would give it: its items, its
data order (the same per-epoch permutation of its seed), its own optimizer and learning-rate schedule, its
evaluation points, best-dev state, patience, and the restore of its best state at the end. What changes is
the work: one joint step takes every active unit's next batch, runs them through the LM together (the caller's
`losses` does forward and backward: each unit's parameters get the gradient of that unit's mean loss, exactly
their separate-training gradient), then steps every unit's optimizer. Units due for evaluation at
a step are evaluated together (`evaluate` gets their indices). A unit that finishes (last step or patience)
leaves the batch; `on_done` gets it at once (with its best state restored), so a driver can test and write it.

Resume: at every step where some unit was evaluated or finished, what each unit needs to continue (trainable tensors,
optimizer and schedule state, loop position, best state, its RNG state; a best state that equals the current
tensors is stored once) is written atomically to one checkpoint, keyed by unit name and checked against each
unit's training fingerprint. A unit that has finished is kept there with its best state alone until the
caller has written it, and left out after, so an interruption anywhere resumes with the same numbers (and the
same batch composition, which matters in bf16).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from repro import checkpoint
from repro.core.encoder_stack import UnitRNG
from repro.core.training import (
    CheckpointTimer,
    TrainConfig,
    TrainOutcome,
    _LoopState,
    _scheduler,
    build_optimizer,
    epoch_batches,
    load_tensors,
    optimizer_step,
    record_evaluation,
    total_steps_of,
    training_kernels,
    wants_untrained_check,
)
from repro.errors import ConfigError

CHECKPOINT = "joint_state.pt"

# [(unit index, its batch of items)] -> each unit's mean loss over its batch, in the same order, after
# accumulating into each unit's parameters the gradient of that mean (forward and backward: the caller may
# split the rows into several passes, e.g. by length, as long as each unit's gradient is that of its mean)
LossFn = Callable[[list[tuple[int, list[Any]]]], list[float]]
# unit indices -> each unit's dev score (higher is better), in the same order
EvalFn = Callable[[list[int]], list[float]]
# (finished unit indices, their outcomes): called once per step at which units finish, best states restored
DoneFn = Callable[[list[int], list[TrainOutcome]], None]


@dataclass
class JointUnit:
    """One unit: a name (the checkpoint key), its named trainable parameters, its items and its settings."""

    name: str
    params: dict[str, nn.Parameter]
    items: Sequence[Any]
    config: TrainConfig


@dataclass
class _Runner:
    """A unit's loop state, optimizer and schedule: what `training.train` keeps in its locals."""

    index: int
    unit: JointUnit
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    state: _LoopState = field(default_factory=_LoopState)
    resumed_from: int = 0
    outcome: Optional[TrainOutcome] = None
    handed_over: bool = False  # finished and given to `on_done`: no longer in the checkpoint
    _batches: tuple[int, list[list[int]]] = (-1, [])

    @property
    def finished(self) -> bool:
        return self.state.step >= self.total_steps or self.state.stopped_early

    def batches(self) -> list[list[int]]:
        if self._batches[0] != self.state.epoch:
            self._batches = (self.state.epoch, epoch_batches(len(self.unit.items), self.unit.config, self.state.epoch))
        return self._batches[1]

    def next_batch(self) -> list[Any]:
        return [self.unit.items[i] for i in self.batches()[self.state.batch_in_epoch]]

    def step(self, loss: float) -> bool:
        """The optimizer step and loop bookkeeping after a backward; True when an evaluation is due."""
        return optimizer_step(self.state, self.unit.config, self.optimizer, self.scheduler,
                              list(self.unit.params.values()), float(loss), len(self.batches()), self.total_steps)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.unit.params.items()}

    def finish(self) -> TrainOutcome:
        if self.state.best_state is not None:
            load_tensors(self.unit.params, self.state.best_state)
        self.outcome = self.state.outcome(self.resumed_from)
        return self.outcome


def train_joint(
    model: nn.Module,
    units: Sequence[JointUnit],
    losses: LossFn,
    evaluate: EvalFn,
    *,
    rng: Optional[UnitRNG] = None,
    checkpoint_dir: Optional[Path] = None,
    on_done: Optional[DoneFn] = None,
    desc: str = "joint",
    quiet: bool = False,
    checkpoint_every_s: Optional[float] = None,
) -> list[TrainOutcome]:
    """Train every unit (see the module docstring); returns their outcomes in `units` order. `model` is put in
    train/eval mode around steps and evaluations; `rng` holds the units' RNG states (reseeded at step 0). The
    checkpoint is written at every check and when a unit finishes, and with `checkpoint_every_s` also when that
    many seconds have passed since the last one (as `repro.core.training.train` does)."""
    if len({u.name for u in units}) != len(units):
        raise ConfigError("joint training: unit names must be distinct (they key the checkpoint)")
    runners = []
    for i, unit in enumerate(units):
        if not unit.items:
            raise ConfigError(f"{unit.name}: no training examples")
        groups = {"encoder": list(unit.params.values())}
        optimizer = build_optimizer(groups, dict(unit.params), unit.config)
        total = total_steps_of(len(unit.items), unit.config)
        runners.append(_Runner(i, unit, total, optimizer, _scheduler(optimizer, unit.config, len(unit.items))))
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    restored = _restore(ckpt, runners, rng) if ckpt is not None and ckpt.is_file() else set()
    if rng is not None:
        for r in runners:
            if r.index not in restored:
                rng.reseed(r.index, r.unit.config.seed)

    _finish([r for r in runners if r.finished], on_done)  # finished before an interruption, not yet written
    untrained = [r for r in runners if not r.finished and wants_untrained_check(r.state, r.unit.config)]
    if untrained:  # fidelity eval_ends=lama: the units' untrained checks, together (logged, counted, never kept)
        _check(model, untrained, evaluate, untrained=True)
    total_steps = max(r.total_steps for r in runners)
    start = min((r.state.step for r in runners if not r.finished), default=total_steps)
    bar = tqdm(total=total_steps, initial=start, desc=desc, disable=quiet, leave=False, unit="step")
    timer = CheckpointTimer(checkpoint_every_s if ckpt is not None else None)
    while True:
        active = [r for r in runners if not r.finished]
        if not active:
            break
        model.train()
        parts = [(r.index, r.next_batch()) for r in active]
        for r in active:
            r.optimizer.zero_grad(set_to_none=True)
        with training_kernels(next(iter(active[0].unit.params.values())).device):
            unit_losses = losses(parts)
        due = [r for r, loss in zip(active, unit_losses) if r.step(loss)]
        bar.update(1)
        bar.set_postfix(units=len(active), loss=f"{sum(unit_losses) / len(active):.3f}")
        # A unit finishes at a check (patience, or the last step under eval_ends=suite) or, where the last step
        # is no check (eval_ends lama, fewshot), right after its last step.
        finished = [r for r in active if r.finished]
        if not due and not finished and not timer.due():
            continue
        if due:
            _check(model, due, evaluate)
        if ckpt is not None:
            _save(ckpt, runners, rng)
            timer.saved()
        _finish(finished, on_done)
    bar.close()
    return [r.outcome for r in runners]  # type: ignore[misc]


def _check(model: nn.Module, runners: list[_Runner], evaluate: EvalFn, untrained: bool = False) -> None:
    """Evaluate the units of `runners` together and record each one's dev score."""
    model.eval()
    with torch.no_grad():
        scores = evaluate([r.index for r in runners])
    for r, score in zip(runners, scores):
        record_evaluation(r.state, tuple(map(float, score)) if isinstance(score, (tuple, list)) else float(score),
                          r.unit.config, r.snapshot, untrained=untrained)


def _finish(runners: list[_Runner], on_done: Optional[DoneFn]) -> None:
    if not runners:
        return
    outcomes = [r.finish() for r in runners]
    if on_done is not None:
        on_done([r.index for r in runners], outcomes)
    for r in runners:  # written by the caller (whose rerun skips it): later checkpoints leave it out
        r.handed_over = True


def _entry(r: _Runner, rng: Optional[UnitRNG]) -> dict[str, Any]:
    """What resuming unit `r` needs, each tensor once. A finished unit (not yet handed over): its loop state
    and best state. An active one: its parameters, optimizer and schedule state, loop state, RNG state, and
    its best state unless that is its current parameters (an evaluation at this very step kept them, as the
    first evaluation always does): then `best_is_trainable` says so and the restore copies them."""
    loop = {k: v for k, v in vars(r.state).items() if k != "best_state"}
    entry: dict[str, Any] = {"fingerprint": r.unit.config.fingerprint(), "loop": loop}
    if r.finished:
        entry["best_state"] = r.state.best_state
        return entry
    current = r.state.best_state is not None and r.state.best_step == r.state.step
    entry.update(trainable={n: p.detach() for n, p in r.unit.params.items()}, optimizer=r.optimizer.state_dict(),
                 scheduler=r.scheduler.state_dict(), rng=rng.states[r.index] if rng is not None else None,
                 best_is_trainable=current, best_state=None if current else r.state.best_state)
    return entry


def _save(path: Path, runners: list[_Runner], rng: Optional[UnitRNG]) -> None:
    """Every unit not yet handed over, by name (`_entry`)."""
    payload = {r.unit.name: _entry(r, rng) for r in runners if not r.handed_over}
    checkpoint.save(path, {"units": payload}, kind="joint_state")


def _restore(path: Path, runners: list[_Runner], rng: Optional[UnitRNG]) -> set[int]:
    """Load the units found in the checkpoint; returns their indices (the others start from step 0). An unusable
    checkpoint is set aside by `repro.checkpoint` and every unit starts from step 0."""
    loaded = checkpoint.load(path, kind="joint_state")
    saved = loaded.get("units") if isinstance(loaded, dict) else None
    if not isinstance(saved, dict):
        if loaded is not None:
            checkpoint.set_aside(path, "joint checkpoint without units")
        return set()
    restored = set()
    for r in runners:
        entry = saved.get(r.unit.name)
        if entry is None:
            continue
        if entry["fingerprint"] != r.unit.config.fingerprint():
            raise ConfigError(f"{path} holds {r.unit.name} trained with other settings; delete it (or the run "
                              "folder) to start over")
        r.state = _LoopState(**entry["loop"])
        r.resumed_from = r.state.step
        if "trainable" in entry:
            load_tensors(r.unit.params, entry["trainable"])
            r.optimizer.load_state_dict(entry["optimizer"])
            r.scheduler.load_state_dict(entry["scheduler"])
            if rng is not None:
                rng.states[r.index] = entry["rng"]
        best = entry["trainable"] if entry.get("best_is_trainable") else entry["best_state"]
        r.state.best_state = copy.deepcopy(best)
        restored.add(r.index)
    return restored
