"""The training loop shared by every task: parameter groups, schedule, early stopping on dev, resume.

The loop knows nothing of tasks: it shuffles a list of items, hands batches of them to `loss_fn`, calls
`evaluate()` (a dev score, higher is better) at every evaluation point, keeps the best trainable state and
restores it at the end. At each evaluation point it checkpoints everything a resumed run needs (trainable
weights, optimizer, scheduler, RNG states, position in the data) so that an interrupted run resumes and
gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from repro import checkpoint
from repro.core import distributed
from repro.core.inference import length_batches
from repro.errors import ConfigError

CHECKPOINT = "train_state.pt"
TIE_BREAKS = ("first", "last")
DECAY_SCOPES = ("norms", "pet", "all")
EVAL_ENDS = ("suite", "lama", "fewshot")
Score = Union[float, tuple[float, ...]]


def is_improvement(score: Score, best: Optional[Score], rule: str) -> bool:
    """Whether a dev check's `score` replaces the `best` kept so far (None: nothing kept yet).

    `first`: only a strictly better score (`>`), so of tied checks the earliest is kept (the suite's default).
    `last`: a score at least as good (`>=`), so of tied checks the latest is kept (THUDM/P-tuning
    `LAMA/cli.py` Trainer.train and `PT-Fewshot/pet/wrapper.py` TransformerModelWrapper.train). A tuple score
    (the authors' CB/MultiRC rule: accuracy and F1) must hold the comparison in every component; under
    `first` it must also be strictly better in one.
    """
    if rule not in TIE_BREAKS:
        raise ConfigError(f"unknown tie_break {rule!r}; valid: {', '.join(TIE_BREAKS)}")
    if best is None:
        return True
    new, old = _components(score), _components(best)
    at_least = all(n >= o for n, o in zip(new, old))
    if rule == "last":
        return at_least
    return at_least and any(n > o for n, o in zip(new, old))


def _components(score: Score) -> tuple[float, ...]:
    return tuple(float(s) for s in score) if isinstance(score, (tuple, list)) else (float(score),)


@dataclass
class TrainConfig:
    """Optimisation settings. The presets (`repro.experiment.lama`, `repro.experiment.superglue_config`) fill
    these from the paper."""

    optimizer: str = field(default="adam", metadata={"help": "adam (LAMA code) or adamw (SuperGLUE code)"})
    lr_encoder: float = field(default=1e-5, metadata={"help": "learning rate of the prompt encoder"})
    lr_backbone: float = field(default=1e-5, metadata={"help": "learning rate of the LM when it is trained"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay of the LM (see decay_scope)"})
    encoder_weight_decay: Optional[float] = field(
        default=None, metadata={"help": "weight decay of the prompt encoder (None: same as weight_decay)"}
    )
    adam_eps: float = field(default=1e-8, metadata={"help": "Adam epsilon"})
    schedule: str = field(default="constant", metadata={"help": "constant | exponential (per epoch) | linear"})
    gamma: float = field(default=0.98, metadata={"help": "ExponentialLR decay per epoch"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "linear schedule: share of steps warming up"})
    batch_size: int = field(default=8, metadata={"help": "examples per optimizer step"})
    max_epochs: Optional[int] = field(default=None, metadata={"help": "stop after this many epochs"})
    max_steps: Optional[int] = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    eval_every_steps: Optional[int] = field(default=None, metadata={"help": "evaluate every N steps (None: per epoch)"})
    patience: Optional[int] = field(default=None, metadata={"help": "stop after N evaluations without dev gain"})
    max_grad_norm: Optional[float] = field(default=None, metadata={"help": "clip the gradient to this norm (None, or 0 on the command line: off)"})
    seed: int = field(default=34, metadata={"help": "seed of data order, dropout and initialisation"})
    tie_break: str = field(default="first", metadata={
        "help": "a dev score equal to the best: first (keep the earlier state, `>`) | last (take the later, `>=`)"})
    tie_patience: str = field(default="count", metadata={
        "help": "a tie taken under tie_break=last: count (a check without gain) | reset (patience starts over)"})
    drop_last: bool = field(default=False, metadata={"help": "drop each epoch's last incomplete batch"})
    decay_scope: str = field(default="norms", metadata={
        "help": "LM parameters spared weight decay: norms (biases, norms, 1-D tensors) | pet (names containing "
                "'bias' or 'LayerNorm.weight') | all (none spared: every LM parameter decays)"})
    eval_ends: str = field(default="suite", metadata={
        "help": "first and last dev checks: suite (the schedule's, plus the last step) | lama (an untrained check "
                "that counts for patience but is never kept; no check at the last step) | fewshot (max_steps + 1 "
                "steps, checks on the schedule only)"})
    reseed: bool = field(default=True, metadata={
        "help": "seed python/numpy/torch with `seed` before training (False: continue the caller's RNG stream)"})
    max_batch_tokens: Optional[int] = field(default=None, metadata={
        "help": "split each batch, sorted by input length, into passes of at most N padded tokens whose "
                "gradients add up to the batch's (less padding and memory; the sums round differently, so it is "
                "part of the fingerprint when set; unset: one pass per batch, and a joint step of encoders on a "
                "frozen LM in passes of 2048)"})

    # Fields added after results were committed: left out of the serialised config while unset, so that the
    # fingerprints (and checkpoints) of runs that never set them stay what they were.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("max_batch_tokens",)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid: adam, adamw")
        if self.schedule not in ("constant", "exponential", "linear"):
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: constant, exponential, linear")
        if self.max_epochs is None and self.max_steps is None:
            raise ConfigError("set max_epochs or max_steps")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(f"unknown tie_break {self.tie_break!r}; valid: {', '.join(TIE_BREAKS)}")
        if self.tie_patience not in ("count", "reset"):
            raise ConfigError(f"unknown tie_patience {self.tie_patience!r}; valid: count, reset")
        if self.decay_scope not in DECAY_SCOPES:
            raise ConfigError(f"unknown decay_scope {self.decay_scope!r}; valid: {', '.join(DECAY_SCOPES)}")
        if self.eval_ends not in EVAL_ENDS:
            raise ConfigError(f"unknown eval_ends {self.eval_ends!r}; valid: {', '.join(EVAL_ENDS)}")
        if self.max_batch_tokens is not None and self.max_batch_tokens <= 0:
            raise ConfigError(f"max_batch_tokens must be positive (or unset), got {self.max_batch_tokens}")

    def to_dict(self) -> dict[str, Any]:
        """The serialised settings, without a `LATER_FIELDS` field left unset."""
        return {k: v for k, v in asdict(self).items() if not (k in self.LATER_FIELDS and v is None)}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainOutcome:
    best_score: float
    best_step: int
    best_epoch: int
    steps: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]]
    resumed_from_step: int = 0


def set_seed(seed: int) -> None:
    """One seed for python, numpy and torch: same seed, same numbers on CPU."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch RNG states (to continue one stream across units, see `set_rng_state`)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def build_optimizer(groups: dict[str, list[torch.nn.Parameter]], named: dict[str, torch.nn.Parameter],
                    config: TrainConfig) -> torch.optim.Optimizer:
    """Two learning rates (encoder, LM); the LM parameters `exempt_from_decay` spares get no weight decay."""
    no_decay_ids = {id(p) for name, p in named.items() if exempt_from_decay(name, p, config.decay_scope)}
    param_groups = []
    if groups.get("encoder"):
        decay = config.weight_decay if config.encoder_weight_decay is None else config.encoder_weight_decay
        param_groups.append({"params": groups["encoder"], "lr": config.lr_encoder, "weight_decay": decay,
                             "name": "encoder"})
    backbone = groups.get("backbone") or []
    decay = [p for p in backbone if id(p) not in no_decay_ids]
    no_decay = [p for p in backbone if id(p) in no_decay_ids]
    if decay:
        param_groups.append({"params": decay, "lr": config.lr_backbone, "weight_decay": config.weight_decay,
                             "name": "backbone"})
    if no_decay:
        param_groups.append({"params": no_decay, "lr": config.lr_backbone, "weight_decay": 0.0,
                             "name": "backbone-no-decay"})
    if not param_groups:
        raise ConfigError("nothing to train: the method trains neither a prompt encoder nor the LM")
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(param_groups, eps=config.adam_eps, fused=_fusable(param_groups))


def _fusable(param_groups: list[dict[str, Any]]) -> bool:
    """Use the fused Adam kernel where torch has one (CPU and CUDA floating tensors): the same update (tested
    equal to 1e-7), but one pass over the parameters instead of a Python loop of small ops per tensor. On CPU the
    default per-tensor loop took a fifth of a SuperGLUE P-tuning step on a 135M LM (the LM is trained there)."""
    params = [p for group in param_groups for p in group["params"]]
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def exempt_from_decay(name: str, param: torch.nn.Parameter, scope: str) -> bool:
    """Whether an LM parameter is spared weight decay (fidelity item `decay_scope`). `norms`, the suite's: biases,
    every norm's weights and any 1-D tensor, whatever the architecture calls them. `pet`: names containing
    "bias" or "LayerNorm.weight", case-sensitive (THUDM/P-tuning PT-Fewshot/pet/wrapper.py
    TransformerModelWrapper.train, PET's rule): BERT's norms are spared, while GPT-2's `ln_1`, Llama's
    `input_layernorm` and ALBERT's `full_layer_layer_norm` decay. `all`: nothing is spared (LAMA/cli.py
    Trainer.train gives Adam one weight_decay for every parameter)."""
    if scope == "all":
        return False
    if scope == "pet":
        return "bias" in name or "LayerNorm.weight" in name
    lowered = name.lower()
    return param.ndim < 2 or lowered.endswith("bias") or "norm" in lowered


def _scheduler(optimizer, config: TrainConfig, n_items: int):
    """The learning-rate schedule over the scheduled steps (`scheduled_steps_of`: without the extra step of
    `eval_ends=fewshot`, which so runs at the linear schedule's end, lr 0, as in PT-Fewshot)."""
    total_steps = scheduled_steps_of(n_items, config)
    if config.schedule == "linear":
        warmup = int(config.warmup_ratio * total_steps)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def train(
    model: torch.nn.Module,
    items: Sequence[Any],
    loss_fn: Callable[[list[Any]], torch.Tensor],
    evaluate: Callable[[], float],
    config: TrainConfig,
    *,
    checkpoint_dir: Optional[Path] = None,
    desc: str = "train",
    quiet: bool = False,
    loss_weight: Callable[[list[Any]], float] = len,
    item_length: Optional[Callable[[Any], int]] = None,
    checkpoint_every_s: Optional[float] = None,
) -> TrainOutcome:
    """Train `model.trainable_parameters()` on `items`; restore the best-dev state before returning.

    With `checkpoint_dir`, the loop checkpoints at every evaluation point and, with `checkpoint_every_s`, also
    whenever that many seconds have passed since the last checkpoint (a long epoch then resumes mid-way; the
    data order, RNGs and schedule are saved with it, so the numbers do not depend on where it was cut).

    Data-parallel (`repro.core.distributed`, a no-op in one process): every process runs this loop with the
    same seed, data order and model selection; each takes its shard of every batch, and the gradients are
    summed across processes, each shard's loss weighted by `loss_weight(shard) / loss_weight(batch)` (the
    share of the batch's mean loss it holds: `len` for a mean over items), so every process steps with the
    one-process gradient. `evaluate` must give the same score on every process (`engine.fit` gathers the
    sharded predictions); the checkpoint is written by the main process.

    With `config.max_batch_tokens`, each batch (each process's shard) is computed in passes of similar
    `item_length` (`length_parts`), weighted the same way, so that short inputs are not padded to the longest."""
    if not items:
        raise ConfigError(f"{desc}: no training examples")
    total_steps = total_steps_of(len(items), config)
    groups = model.trainable_parameters()
    optimizer = build_optimizer(groups, dict(model.named_parameters()), config)
    scheduler = _scheduler(optimizer, config, len(items))
    trainable = [p for ps in groups.values() for p in ps]

    state = _LoopState()
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt is not None and ckpt.is_file():  # a checkpoint that cannot be used is set aside: a fresh start
        state = _restore(ckpt, model, optimizer, scheduler, config)
    resumed_from = state.step
    distributed.broadcast_parameters(trainable)
    if state.step == 0:
        if config.reseed:
            set_seed(config.seed)
            state.order_seed = config.seed
        else:  # the data order continues the caller's stream (PET's RandomSampler draws from torch's RNG)
            state.order_seed = distributed.broadcast_object(int(torch.randint(0, 2**31 - 1, ())))
    if wants_untrained_check(state, config):
        _evaluate_point(state, model, evaluate, config, untrained=True)

    bar = tqdm(total=total_steps, initial=state.step, desc=desc, disable=quiet, leave=False, unit="step")
    timer = CheckpointTimer(checkpoint_every_s if ckpt is not None else None)
    parts = partial(length_parts, length=item_length, max_tokens=config.max_batch_tokens)
    while state.step < total_steps and not state.stopped_early:
        batches = epoch_batches(len(items), config, state.epoch, state.order_seed)
        while state.batch_in_epoch < len(batches) and state.step < total_steps:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            batch = [items[i] for i in batches[state.batch_in_epoch]]
            loss = _backward(batch, loss_fn, loss_weight, trainable, parts)
            due = optimizer_step(state, config, optimizer, scheduler, trainable, loss, len(batches), total_steps)
            bar.update(1)
            bar.set_postfix(loss=f"{state.last_loss:.3f}", best="/".join(f"{b:.2f}" for b in _components(state.best_score)))
            if due:
                _evaluate_point(state, model, evaluate, config)
            # a timed checkpoint: the main process's clock decides for every process (they meet in `once`)
            timed_out = timer.every_s is not None and distributed.broadcast_object(timer.due())
            if ckpt is not None and (due or timed_out):
                distributed.once(lambda: _save(ckpt, state, model, optimizer, scheduler, config))
                timer.saved()
            if state.stopped_early or state.batch_in_epoch == 0:  # stopped, or a new epoch: new batches
                break
    bar.close()
    if state.best_state is not None:
        _load_trainable(model, state.best_state)
    return state.outcome(resumed_from)


def _backward(batch: list[Any], loss_fn: Callable[[list[Any]], torch.Tensor],
              loss_weight: Callable[[list[Any]], float], params: Sequence[torch.nn.Parameter],
              parts: Callable[[list[Any]], list[list[Any]]] = lambda items: [items]) -> float:
    """Forward and backward of one batch; the batch's mean loss. In one process: `loss_fn(batch)`. Data-parallel:
    this process's shard of the batch, its loss weighted by its share of the batch (an empty shard adds
    nothing), then the gradients and losses summed over the processes (`repro.core.distributed`). `parts`
    splits what this process computes into passes (`length_parts`), each weighted by its share alike."""
    device = params[0].device if params else torch.device("cpu")
    mine = distributed.shard(batch) if distributed.active() else batch
    value = 0.0
    # The backward runs under the training kernels too: with `--recompute-activations` it replays each layer's
    # forward, which must pick the attention kernel the forward picked.
    with training_kernels(device):
        for part in parts(mine) if mine else []:
            loss = loss_fn(part)
            if part is not batch:  # a share of the batch: weighted by it (the whole batch as before, unscaled)
                loss = loss * (loss_weight(part) / loss_weight(batch))
            loss.backward()
            value += float(loss.detach())
    return distributed.reduce_gradients(params, value) if distributed.active() else value


def length_parts(items: list[Any], length: Optional[Callable[[Any], int]],
                 max_tokens: Optional[int]) -> list[list[Any]]:
    """`items` in passes of at most `max_tokens` padded tokens, cut by `length` as evaluation batches and the
    joint step's passes are (`inference.length_batches`); `[items]` itself without a limit or when one pass
    holds them all."""
    if max_tokens is None or length is None or len(items) < 2:
        return [items]
    cut = length_batches(items, None, max_tokens, length=length)
    return [items] if len(cut) == 1 else [[items[k] for k in pass_] for pass_ in cut]


def optimizer_step(state: "_LoopState", config: TrainConfig, optimizer: torch.optim.Optimizer, scheduler,
                   params: Sequence[torch.nn.Parameter], loss: float, n_batches: int, total_steps: int) -> bool:
    """After a backward: clip, step the optimizer and the schedule, advance the loop position (`n_batches` in
    this epoch); True at an evaluation point (`is_eval_point`). Shared by `train` and the joint loop
    (`repro.core.joint`), so both step and count alike."""
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(list(params), config.max_grad_norm)
    optimizer.step()
    if config.schedule == "linear":
        scheduler.step()
    state.step += 1
    state.batch_in_epoch += 1
    state.last_loss = loss
    end_of_epoch = state.batch_in_epoch == n_batches
    due = is_eval_point(config, state.step, end_of_epoch, total_steps)
    if end_of_epoch:
        state.epoch += 1
        state.batch_in_epoch = 0
        if config.schedule == "exponential":
            scheduler.step()
    return due


@dataclass
class _LoopState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: Any = -math.inf
    best_step: int = 0
    best_epoch: int = 0
    evals_without_gain: int = 0
    stopped_early: bool = False
    last_loss: float = math.nan
    history: list = field(default_factory=list)
    best_state: Optional[dict] = None
    order_seed: int = 0

    def outcome(self, resumed_from: int) -> TrainOutcome:
        return TrainOutcome(
            best_score=self.best_score, best_step=self.best_step, best_epoch=self.best_epoch, steps=self.step,
            epochs_run=self.epoch, stopped_early=self.stopped_early, history=self.history,
            resumed_from_step=resumed_from,
        )


def training_kernels(device: torch.device):
    """The attention kernel of training forwards. On CPU, scaled-dot-product attention's default (flash) kernel
    has a slow backward for short sequences: SmolLM2-135M, 64 LAMA facts of ~14 tokens in bf16, spends ~2.2 s
    CPU in it against ~0.6 s with the math kernel (the forward costs the same). Evaluation keeps the default."""
    if device.type != "cpu":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


# ---------------------------------------------------------------- where training starts and ends its dev checks
# Fidelity item `eval_ends` (TrainConfig.eval_ends), read by these three functions only, which both loops call:
# - suite: the schedule's checks, and the last step is always one;
# - lama (THUDM/P-tuning LAMA/cli.py Trainer.train): each epoch starts with a dev check, so the untrained model
#   is checked first (never kept: `epoch_idx > 0` guards the save, but it counts towards early stopping), and
#   the last epoch's training is never checked (the loop ends before the next epoch's check);
# - fewshot (PT-Fewshot/pet/wrapper.py TransformerModelWrapper.train, PET's loop): the loop breaks once
#   `max_steps < global_step`, so it runs max_steps + 1 steps (the linear schedule spans max_steps, so the extra
#   one runs at lr 0), checking every eval_every_step only: the last step is checked only when on that schedule.
#   Its check before training is logged, never compared, so it is not made here.
def total_steps_of(n_items: int, config: TrainConfig) -> int:
    """Optimizer steps the loop runs for `n_items` training items: `scheduled_steps_of`, plus PT-Fewshot's extra
    step under `eval_ends=fewshot` when max_steps bounds the run."""
    scheduled = scheduled_steps_of(n_items, config)
    return scheduled + int(config.eval_ends == "fewshot" and scheduled == config.max_steps)


def is_eval_point(config: TrainConfig, step: int, end_of_epoch: bool, total_steps: int) -> bool:
    """Whether the loop checks dev after optimizer step `step` of `total_steps` (see `eval_ends` above)."""
    due = eval_due(config, step, end_of_epoch)
    if config.eval_ends == "lama":
        return due and step < total_steps
    if config.eval_ends == "fewshot":
        return due
    return due or step == total_steps


class CheckpointTimer:
    """When a timed checkpoint is due between dev checks: `every_s` seconds after the last one was written
    (None: never). Shared by `train` and the joint loop (`repro.core.joint`)."""

    def __init__(self, every_s: Optional[float]) -> None:
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.every_s is not None and time.monotonic() - self.last >= self.every_s

    def saved(self) -> None:
        self.last = time.monotonic()


def wants_untrained_check(state: "_LoopState", config: TrainConfig) -> bool:
    """Whether the loop checks the untrained model before its first step (`eval_ends=lama`; see above)."""
    return config.eval_ends == "lama" and state.step == 0 and not state.history


def scheduled_steps_of(n_items: int, config: TrainConfig) -> int:
    """Optimizer steps of a unit with `n_items` training items: max_steps, capped by max_epochs."""
    steps_per_epoch = math.ceil(n_items / config.batch_size)
    if config.drop_last and n_items > config.batch_size:
        steps_per_epoch = n_items // config.batch_size
    total_steps = config.max_steps or steps_per_epoch * config.max_epochs
    if config.max_epochs is not None:
        total_steps = min(total_steps, steps_per_epoch * config.max_epochs)
    return total_steps


def epoch_batches(n_items: int, config: TrainConfig, epoch: int, order_seed: Optional[int] = None) -> list[list[int]]:
    """The item indices of each batch of `epoch`: a permutation drawn from the seed and the epoch alone, so a
    resumed run (and a unit trained jointly with others, `repro.core.joint`) sees the same order."""
    seed = config.seed if order_seed is None else order_seed
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    batches = [order[i : i + config.batch_size].tolist() for i in range(0, n_items, config.batch_size)]
    if config.drop_last and len(batches) > 1 and len(batches[-1]) < config.batch_size:
        batches.pop()  # LAMA/cli.py: DataLoader(..., drop_last=True)
    return batches


def eval_due(config: TrainConfig, step: int, end_of_epoch: bool) -> bool:
    """Whether `step` is on the check schedule (every eval_every_steps, else every epoch end; `is_eval_point`
    adds or removes the ends)."""
    return bool((config.eval_every_steps and step % config.eval_every_steps == 0) or (
        not config.eval_every_steps and end_of_epoch
    ))


def _evaluate_point(state: _LoopState, model, evaluate, config: TrainConfig, untrained: bool = False) -> None:
    model.eval()
    with torch.no_grad():
        raw = evaluate()
    score = tuple(float(s) for s in raw) if isinstance(raw, (tuple, list)) else float(raw)
    record_evaluation(state, score, config, lambda: _trainable_state(model), untrained=untrained)


def record_evaluation(state: _LoopState, score: Any, config: TrainConfig,
                      snapshot: Callable[[], dict[str, torch.Tensor]], untrained: bool = False) -> None:
    """Log a dev score; keep the trainable state (`snapshot()`) when `is_improvement` keeps it; count evaluations
    without gain towards early stopping. Shared by the single-unit loop and the joint one (`repro.core.joint`):
    the rule deciding a gain (ties included, `config.tie_break`) lives here only, so it applies to both.
    `untrained`: the check before training (`wants_untrained_check`), logged and counted, never kept."""
    state.history.append({"step": state.step, "epoch": state.epoch, "dev": score,
                          "loss": None if untrained else state.last_loss})
    best = None if state.best_state is None else state.best_score
    kept = not untrained and is_improvement(score, best, config.tie_break)
    if kept:
        state.best_score, state.best_step, state.best_epoch = score, state.step, state.epoch
        state.best_state = snapshot()
    # A gain resets patience: a kept check under `first`; under `last` only a strictly better one in every
    # component (PT-Fewshot counts a kept tie as a check without gain), unless tie_patience says reset (LAMA/cli.py).
    gain = kept and (config.tie_break == "first" or best is None
                     or all(n > o for n, o in zip(_components(score), _components(best))))
    if gain or (kept and config.tie_patience == "reset"):
        state.evals_without_gain = 0
    else:
        state.evals_without_gain += 1
        if config.patience is not None and state.evals_without_gain >= config.patience:
            state.stopped_early = True


def _trainable_state(model) -> dict[str, torch.Tensor]:
    keep = {id(p) for ps in model.trainable_parameters().values() for p in ps}
    return {name: p.detach().clone() for name, p in model.named_parameters() if id(p) in keep}


def _load_trainable(model, tensors: dict[str, torch.Tensor]) -> None:
    load_tensors(dict(model.named_parameters()), tensors)


def load_tensors(params: dict[str, torch.nn.Parameter], tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved `tensors` into the parameters of the same names (best-state restore, resume)."""
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)


def _save(path: Path, state: _LoopState, model, optimizer, scheduler, config: TrainConfig) -> None:
    payload = {
        "fingerprint": config.fingerprint(),
        "loop": {k: v for k, v in vars(state).items() if k != "best_state"},
        "best_state": state.best_state,
        "trainable": _trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
    }
    checkpoint.save(path, payload, kind="train_state")


def _restore(path: Path, model, optimizer, scheduler, config: TrainConfig) -> _LoopState:
    """The loop state saved at `path`, with model, optimizer, schedule and RNGs put back as they were then; a
    fresh state when the file is unusable or does not fit this model (set aside by `repro.checkpoint`)."""
    payload = checkpoint.load(path, kind="train_state")
    if not isinstance(payload, dict) or "fingerprint" not in payload:
        if payload is not None:
            checkpoint.set_aside(path, "checkpoint without a training fingerprint")
        return _LoopState()
    if payload["fingerprint"] != config.fingerprint():
        raise ConfigError(
            f"{path} was written with other training settings; delete it (or the run folder) to start over"
        )
    before = (_trainable_state(model), copy.deepcopy(optimizer.state_dict()), copy.deepcopy(scheduler.state_dict()),
              rng_state())
    try:
        state = _LoopState(**payload["loop"])
        state.best_state = payload["best_state"]
        _load_trainable(model, payload["trainable"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        set_rng_state(payload["rng"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:  # readable, but not this run's shape
        _load_trainable(model, before[0])
        optimizer.load_state_dict(before[1])
        scheduler.load_state_dict(before[2])
        set_rng_state(before[3])
        checkpoint.set_aside(path, f"checkpoint does not fit this model ({type(err).__name__}: {err})")
        return _LoopState()
    return state
