"""The engine for many units on one frozen LM: build their encoders as separate training would, train them in
one pass (`repro.core.joint`), evaluate several units' examples in one pass.

Used by the drivers for methods that train a prompt encoder on a frozen LM (LAMA P-tuning over relations,
SuperGLUE P-tuning-frozen over seeds). Each unit's encoder is built exactly as `engine.build_scorer` builds it
(seed, then the encoder), so a unit's numbers are those of separate training up to the floating-point effect
of sharing batches (none in fp32 beyond rounding; small in bf16, where padding and batch shapes change the
kernels' sums).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from repro.core import distributed
from repro.core.backbone import Backbone
from repro.core.encoder_stack import EncoderStack
from repro.core.inference import length_batches
from repro.core.joint import JointUnit, train_joint
from repro.core.model import PromptedLM
from repro.core.template import Template
from repro.core.training import TrainConfig, TrainOutcome, set_seed
from repro.fidelity import selection_value
from repro.errors import ConfigError
from repro.experiment.config import RunConfig
from repro.experiment.engine import item_length, new_encoder, new_scorer, training_record
from repro.methods import Method
from repro.scorers.base import Scorer, ScorerContext
from repro.tasks.base import Example, Task


CHUNK_TOKENS = 2048  # padded tokens per forward of a joint training step (rows sorted by length)


@dataclass
class Member:
    """One unit of a joint run: its name, task, template (pattern variant) and seed."""

    name: str
    task: Task
    template: Template
    pattern: str
    seed: int


@dataclass
class JointModel:
    """The frozen LM with every member's encoder (`stack`) and one scorer per member reading its own encoder."""

    model: PromptedLM
    stack: Optional[EncoderStack]
    scorers: list[Scorer]


def can_train_jointly(method: Method, train_config: Optional[TrainConfig] = None) -> bool:
    """A prompt encoder on a frozen LM: units share the LM, so their batches can share its forward. Not when the
    units' random streams chain (fidelity `seeds=once`: a repetition starts where the previous one ended), nor in
    a data-parallel launch (`repro.core.distributed`), which splits one unit's batches over the processes: there
    the units train one after another, as `--sequential` does."""
    chained = train_config is not None and not train_config.reseed
    return method.uses_encoder and not method.trains_backbone and not chained and not distributed.active()


def build_joint(members: Sequence[Member], method: Method, backbone: Backbone, config: RunConfig, *,
                max_length: Optional[int], options: Optional[dict] = None, quiet: bool = False) -> JointModel:
    """Per member, as `engine.build_scorer`: seed, then its encoder; all on one frozen prompted LM (renderings
    cached, `repro.experiment.renders`). A zero-shot
    method (MP) gets the plain LM (no encoder, `stack` None), shared by every member's scorer."""
    if method.trains_backbone:
        raise ConfigError(f"method {method.name!r} trains the LM: its units cannot share one frozen LM")
    stack = None
    if method.uses_encoder:
        encoders = []
        for m in members:
            set_seed(m.seed)
            encoders.append(new_encoder(m.template.num_prompt_tokens, backbone, config))
        stack = EncoderStack(encoders)
    model = PromptedLM(backbone, stack, train_backbone=False, dtype=config.lm_dtype(method))
    scorers = [new_scorer(ScorerContext(m.task, method, model, m.template, m.pattern, max_length,
                                        config.eval_batch_size, quiet=quiet, options=dict(options or {}),
                                        prompt_offset=stack.offsets[i] if stack is not None else 0,
                                        fidelity=config.choices))
               for i, m in enumerate(members)]
    return JointModel(model, stack, scorers)


def predict_together(scorers: Sequence[Scorer], example_lists: Sequence[Sequence[Example]], *,
                     desc: str = "eval") -> list[list[Any]]:
    """Each scorer's predictions of its examples; scorers with one `joint_key` share one pass over all their
    inputs (the others predict on their own)."""
    out: list[Optional[list[Any]]] = [None] * len(scorers)
    groups: dict[Any, list[int]] = {}
    for i, scorer in enumerate(scorers):
        key = scorer.joint_key()
        if key is None:
            out[i] = scorer.predict(example_lists[i], desc=desc)
        else:
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        inputs = [scorers[i].eval_inputs(example_lists[i]) for i in members]
        flat = [x for part in inputs for x in part]
        predicted = scorers[members[0]].predict_inputs(flat, desc=desc)  # type: ignore[attr-defined]
        start = 0
        for i, part in zip(members, inputs):
            out[i] = predicted[start : start + len(part)]
            start += len(part)
    return out  # type: ignore[return-value]


def fit_together(joint: JointModel, members: Sequence[Member], train_lists: Sequence[Sequence[Example]],
                 dev_lists: Sequence[Sequence[Example]], train_config: TrainConfig, *,
                 checkpoint_dir: Optional[Path],
                 on_done: Optional[Callable[[list[int], list[dict[str, Any]]], None]] = None,
                 desc: str = "joint", quiet: bool = False, selection: str = "mean",
                 checkpoint_every_s: Optional[float] = None) -> list[dict[str, Any]]:
    """`engine.fit` for every member at once: returns (and hands `on_done` as they finish, best states loaded)
    what the results record about each member's training."""
    scorers, stack = joint.scorers, joint.stack
    if stack is None:
        raise ConfigError("joint training needs the members' prompt encoders (a method with one)")
    keys = {s.joint_key() for s in scorers}
    if None in keys or len(keys) != 1:
        raise ConfigError("joint training needs scorers that score rows alike (one answer space for all units)")
    items = [s.train_items(examples) for s, examples in zip(scorers, train_lists)]
    units = [JointUnit(m.name, dict(stack.encoders[i].named_parameters()), items[i], replace(train_config, seed=m.seed))
             for i, m in enumerate(members)]

    budget = train_config.max_batch_tokens or CHUNK_TOKENS

    def losses(parts: list[tuple[int, list[Any]]]) -> list[float]:
        """Every unit's rows, cut into passes of at most CHUNK_TOKENS tokens (the training settings'
        `max_batch_tokens` where given) as evaluation batches are (`inference.length_batches`: sorted by length,
        one length per pass where it fills half of one, so little padding and mostly no attention mask); each
        row's loss weighted by 1 / its unit's batch size, so each encoder's accumulated gradient is that of its
        unit's mean loss."""
        stack.active = {i for i, _ in parts}
        rows = [(slot, item) for slot, (_, batch) in enumerate(parts) for item in batch]
        sizes = [len(batch) for _, batch in parts]
        totals = [0.0] * len(parts)
        row_losses = scorers[parts[0][0]].row_losses  # type: ignore[attr-defined]
        table = stack.prompts()
        held = table.detach().requires_grad_(True)
        with stack.held(held):
            for chunk in length_batches([item for _, item in rows], None, budget, length=item_length):
                slots = torch.tensor([rows[k][0] for k in chunk])
                values = row_losses([rows[k][1] for k in chunk])
                weights = 1.0 / torch.tensor(sizes, dtype=values.dtype, device=values.device)[slots.to(values.device)]
                (values * weights).sum().backward()
                per_slot = torch.zeros(len(parts), dtype=torch.float64).index_add_(
                    0, slots, (values.detach() * weights.detach()).double().cpu())
                totals = [t + float(v) for t, v in zip(totals, per_slot)]
        if held.grad is not None:
            table.backward(held.grad)
        return totals

    def evaluate(indices: list[int]) -> list[float]:
        stack.active = set(indices)
        predicted = predict_together([scorers[i] for i in indices], [dev_lists[i] for i in indices], desc="dev")
        return [selection_value(members[i].task, dev_lists[i], p, members[i].task.score(dev_lists[i], p), selection)
                for i, p in zip(indices, predicted)]

    def record(i: int, outcome: TrainOutcome) -> dict[str, Any]:
        return training_record(len(items[i]), len(dev_lists[i]), outcome)

    def done(indices: list[int], outcomes: list[TrainOutcome]) -> None:
        if on_done is not None:
            stack.active = set(indices)  # the finished units' encoders, for their test predictions
            on_done(indices, [record(i, o) for i, o in zip(indices, outcomes)])

    try:
        outcomes = train_joint(joint.model, units, losses, evaluate, rng=stack.rng, checkpoint_dir=checkpoint_dir,
                               on_done=done, desc=desc, quiet=quiet, checkpoint_every_s=checkpoint_every_s)
    finally:
        stack.active = None
    return [record(i, o) for i, o in enumerate(outcomes)]
