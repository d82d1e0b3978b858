"""The scorer interface: how the engine trains and evaluates a task without knowing its answer space.

The engine (`repro.experiment.superglue`) knows settings, seeds, data files, training and results; a task adapter
(`tasks/`) knows its fields, patterns, labels and metric; a *scorer* joins a task kind to a model. Per task
kind (`Task.kind`: classification, candidates, span, vocab) one factory is registered:

    register_scorer(kind, factory)        # factory(ctx: ScorerContext) -> Scorer

and the engine, per seed, builds `ctx` (task, method, the prompted LM with its fresh prompt encoder, the
parsed template of the chosen pattern, max length, eval batch size, and the run's free-form
`scorer_options`, e.g. `{"normalize": "mean"}` from `--scorer-option normalize=mean`) and calls

    scorer = make_scorer(ctx)             # imports the kind's module on first use, which registers it
    items = scorer.train_items(train_examples)          # once per seed (through task.train_examples)
    train(scorer.model, items, scorer.loss, evaluate, ...)   # repro.core.training: scorer.loss(list of items) -> scalar
    predictions = scorer.predict(examples)              # aligned with examples; fed to task.score(...)

`Scorer.model` is the module whose `trainable_parameters()` the loop optimises (the prompted LM, or a
wrapper adding parameters: CLS-FT's head). `describe()` adds what the results should record (verbalizer
token ids, scoring rule). A scorer raises ConfigError for a method it cannot serve (a target-less pattern
on a candidate task) and for a pattern/tokenizer combination it cannot score (a multi-token verbalizer word on a
masked LM).

Task-side hooks (tasks/base.py) that the engine and scorers honour: `train_examples` (a task's selection or
augmentation of its training examples; scorers call it in `train_items`; CLS-FT calls
`classifier_train_examples`), `notes` (copied into every
result), `eval_fallback` (evaluated when the dev set is absent; the result is marked partial),
`trained_on` / `diagnostics` (AX-b and AX-g evaluated by the RTE model).

Which module provides a kind's scorer: SCORER_MODULES below (one line per kind); importing that module calls
`register_scorer(kind, ...)`. `classification.py` (verbalizers), `classifier.py` (CLS-FT's head: method style
`classifier` takes it for every kind), `candidates.py` (COPA, ReCoRD),
`span.py` (WSC) and `vocab.py` (LAMA) decide what is scored and how it trains; none of them reads the model
itself: every forward, log-probability and decoding step goes through `repro.core.inference`, so all scorers
get their numbers the same way. The helpers at the end of this module (`scorer_options`, `require_target`, `training_examples`)
are the checks the scorers share.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from repro.errors import ConfigError
from repro.fidelity import FidelityChoices
from repro.methods import Method, Style
from repro.core.model import PromptedLM
from repro.core.template import Rendered, Template
from repro.tasks.base import Example, Task

SCORER_MODULES: dict[str, str] = {
    "classification": "repro.scorers.classification",
    "candidates": "repro.scorers.candidates",
    "span": "repro.scorers.span",
    "vocab": "repro.scorers.vocab",
    "classifier": "repro.scorers.classifier",  # CLS-FT, whatever the task's kind (method style `classifier`)
}


@dataclass
class ScorerContext:
    """Everything a scorer needs for one seed of one run."""

    task: Task
    method: Method
    model: PromptedLM  # backbone (+ prompt encoder when the method has one), trainability set by the method
    template: Template  # the chosen pattern, parsed (classifier patterns have no target)
    pattern: str  # its variant name, recorded in the results
    max_length: int  # tokens per input; shortenable slots are cut first, prompts/anchors/targets never
    eval_batch_size: int
    quiet: bool = False
    options: dict[str, str] = field(default_factory=dict)  # the run's `scorer_options` (CLI --scorer-option)
    prompt_offset: int = 0  # this unit's block in a shared prompt table (joint training: repro.core.encoder_stack)
    fidelity: FidelityChoices = field(default_factory=FidelityChoices)  # the run's choices; scorers read their items

    @property
    def causal(self) -> bool:
        return self.model.backbone.is_causal

    @property
    def tokenizer(self):
        return self.model.backbone.tokenizer

    def render(self, example: Example, *, target_ids: Optional[Sequence[int]] = None) -> Rendered:
        """The example through the template for this backbone (a missing slot is a TemplateError naming it)."""
        rendered = self.template.render(self.tokenizer, example.values, causal=self.causal, target_ids=target_ids,
                                        max_length=self.max_length)
        if self.prompt_offset:
            rendered.prompt_offset = self.prompt_offset
        return rendered


class Scorer(ABC):
    """Trains and predicts one task kind. See the module docstring for the calling sequence."""

    model: nn.Module

    @abstractmethod
    def train_items(self, examples: Sequence[Example]) -> list[Any]:
        """Training items (rendered inputs with their gold answer), built once per seed."""

    @abstractmethod
    def loss(self, items: list[Any]) -> torch.Tensor:
        """Mean loss of a batch of training items (with gradients)."""

    @abstractmethod
    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[Any]:
        """Predictions aligned with `examples`, in the form the task's `score` takes (label keys for
        classification)."""

    def describe(self) -> dict[str, Any]:
        """What the results should record about the scoring (verbalizer ids, rule)."""
        return {}

    # ------------------------------------------------------------ joint passes (optional; repro.experiment.joint)
    # Scorers whose `joint_key()` is equal (and not None) score each row on its own with the same answer space,
    # so rows of several units (each rendered with its own `prompt_offset`) can share one forward:
    #   row_losses(items)      -> (B,) per-item losses whose mean is `loss(items)`
    #   eval_inputs(examples)  -> model inputs;  predict_inputs(inputs) -> predictions (`predict` = the two)
    def joint_key(self) -> Any:
        """Equal keys: this scorer's `row_losses`/`predict_inputs` serve the other's items (None: never)."""
        return None


ScorerFactory = Callable[[ScorerContext], Scorer]
_FACTORIES: dict[str, ScorerFactory] = {}


def register_scorer(kind: str, factory: ScorerFactory) -> None:
    """Make `factory` the scorer of task kind `kind` (the module named in SCORER_MODULES calls this)."""
    _FACTORIES[kind] = factory


def make_scorer(ctx: ScorerContext) -> Scorer:
    """The scorer of the task's kind; CLS-FT's head (method style `classifier`) serves every kind."""
    kind = "classifier" if ctx.method.style is Style.CLASSIFIER else ctx.task.kind
    if kind not in _FACTORIES:
        module = SCORER_MODULES.get(kind)
        if module is None:
            raise ConfigError(f"task {ctx.task.name!r}: no scorer for task kind {kind!r}; "
                              f"known kinds: {', '.join(SCORER_MODULES)}")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            raise ConfigError(f"task {ctx.task.name!r} needs the {kind} scorer in {module}, "
                              "which is not installed yet") from None
        if kind not in _FACTORIES:
            raise ConfigError(f"{module} did not register a scorer for task kind {kind!r}")
    return _FACTORIES[kind](ctx)


# ------------------------------------------------------------------------------------------------ shared checks
def scorer_options(ctx: ScorerContext, accepted: tuple[str, ...]) -> dict[str, str]:
    """The run's scorer options (`--scorer-option KEY=VALUE`), checked against what this scorer takes."""
    unknown = sorted(set(ctx.options) - set(accepted))
    if unknown:
        raise ConfigError(f"task {ctx.task.name!r} ({ctx.task.kind}): unknown scorer option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(accepted) if accepted else 'none'}")
    return dict(ctx.options)


def require_target(ctx: ScorerContext) -> None:
    """Candidate and span tasks read answers at a [MASK] target: refuse a target-less pattern."""
    if not ctx.template.has_target:
        raise ConfigError(f"task {ctx.task.name!r} ({ctx.task.kind}) is scored through a [MASK] target; "
                          f"method {ctx.method.name!r} with pattern {ctx.pattern!r} has none")


def training_examples(ctx: ScorerContext, examples: Sequence[Example]) -> list[Example]:
    """The task's own selection and augmentation of its training examples (`train_examples`, see tasks/);
    an empty selection is an error (nothing could train)."""
    chosen = ctx.task.train_examples(examples)
    if not chosen:
        raise ConfigError(f"task {ctx.task.name!r}: none of the {len(examples)} training examples can train "
                          "(unlabeled, or no gold answer among the candidates)")
    return chosen
