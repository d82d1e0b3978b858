"""SuperGLUE run configuration and presets.

`paper`: the authors' few-shot code (THUDM/P-tuning PT-Fewshot, read for these values): AdamW for the LM at lr
1e-5 with weight decay 0.1 (not on biases and norms), a second AdamW for the prompt encoder at lr 1e-4, eps
1e-8, gradient clipping 1.0, linear decay without warm-up; 250 steps for BoolQ, CB and MultiRC, 3500 for the
others; dev32 checked every 20 steps, stop after 10 checks without gain; batch 16 (their scripts: 2 per GPU on
8 GPUs); inputs of 256 tokens (MultiRC 512, as their script); float32. Supervised: the paper's grid defaults
(AdamW, lr 1e-5, batch 16, linear decay), 20 epochs on the small training sets and 10 on the large ones
(BoolQ, MultiRC, ReCoRD, WiC), evaluation on the dev set after every epoch, stop after 5 epochs without gain
(the paper gives no patience; weight decay 0.1 and encoder lr 1e-4 carried over from the few-shot code).
The prompt encoder gets no weight decay, as in the authors' encoder optimizer. Their scripts also leave
the encoder lr at 1e-5 for CB and WiC and warm up RTE for 150 steps; the preset follows the paper's "1e-4"
for every task and no warm-up (override with --lr-encoder).

`cpu`: the same recipe scaled to two CPU cores (the 7 classification tasks, MP and P-tuning, 3 seeds, on
SmolLM2-135M in roughly 1.5 hours): bfloat16 autocast, batch 8, 20 steps (5 epochs of the 32 examples) with
dev32 checked every 10, larger learning rates so that 20 steps move the model (LM 2e-5, encoder 1e-3), and
evaluation on a fixed seeded
subset of the two large dev sets (BoolQ 500 of 3270 questions, MultiRC 500 of 4848 answer options, whole
questions); the results say so (`partial`, `n_eval`). Its supervised schedule (2 epochs, 1 on the large
sets, patience 1) is a smoke-scale check of that setting, not a reproduction of it.

`cpu-long`: the cpu preset with five times its few-shot steps (see `_CPU_LONG`); supervised as cpu.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Mapping, Optional

from repro import fidelity as fid
from repro import shared_prefix
from repro.core.training import TrainConfig
from repro.errors import ConfigError
from repro.experiment.config import FROM_PRESET, RunConfig, fingerprint, resolve_limit
from repro.experiment.fingerprints import code_version
from repro.tasks.base import SETTINGS, Task
from repro.tasks.registry import get_task, task_names

DEFAULT_SEEDS = (42, 43, 44)  # "3 runs from seed 42"
CHECKPOINT_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class Preset:
    """A named set of defaults; `train_config` resolves the training settings of one task and setting."""

    description: str
    fewshot: TrainConfig
    supervised: TrainConfig
    supervised_large_epochs: int  # epochs on the large training sets (supervised.max_epochs on the others)
    dtype: str
    max_length: int
    eval_batch_size: int
    authors_task_settings: bool  # the tasks' `paper_fewshot_steps` and `paper_max_length` apply
    eval_subsets: bool  # the tasks' `cpu_eval_subset` applies (else every evaluation set is whole)

    def train_config(self, task: Task, setting: str) -> TrainConfig:
        if setting == "fewshot":
            steps = task.paper_fewshot_steps if self.authors_task_settings else None
            return replace(self.fewshot, max_steps=steps or self.fewshot.max_steps)
        if task.large_train_set:
            return replace(self.supervised, max_epochs=self.supervised_large_epochs)
        return self.supervised

    def max_length_for(self, task: Task) -> int:
        return (task.paper_max_length if self.authors_task_settings else None) or self.max_length

    def max_eval_for(self, task: Task) -> Optional[int]:
        return task.cpu_eval_subset if self.eval_subsets else None

_PAPER = Preset(
    description="the authors' few-shot code and the paper's supervised grid defaults",
    fewshot=TrainConfig(optimizer="adamw", lr_encoder=1e-4, lr_backbone=1e-5, weight_decay=0.1, encoder_weight_decay=0.0,
                        adam_eps=1e-8, schedule="linear", warmup_ratio=0.0, batch_size=16, max_steps=3500,
                        eval_every_steps=20, patience=10, max_grad_norm=1.0, seed=42),
    supervised=TrainConfig(optimizer="adamw", lr_encoder=1e-4, lr_backbone=1e-5, weight_decay=0.1,
                           encoder_weight_decay=0.0, adam_eps=1e-8, schedule="linear", batch_size=16, max_epochs=20,
                           patience=5, max_grad_norm=1.0, seed=42),
    supervised_large_epochs=10,
    dtype="float32", max_length=256, eval_batch_size=32, authors_task_settings=True, eval_subsets=False,
)
# The same recipe scaled to 2 CPU cores: what differs from the paper's, and nothing else.
_CPU = replace(
    _PAPER,
    description="the paper's recipe scaled to 2 CPU cores (fewer, larger steps; bf16; large dev sets subsampled)",
    fewshot=replace(_PAPER.fewshot, lr_encoder=1e-3, lr_backbone=2e-5, batch_size=8, max_steps=20, eval_every_steps=10,
                    patience=2),
    supervised=replace(_PAPER.supervised, lr_encoder=1e-3, lr_backbone=2e-5, max_epochs=2, patience=1),
    supervised_large_epochs=1, dtype="bfloat16", authors_task_settings=False, eval_subsets=True,
)
# The cpu recipe with a five times longer few-shot schedule (100 steps, 25 epochs of the 32 examples), dev32
# checked every 20 steps with the paper's patience of 10 checks: what the paper preset's steps cost here (a
# batch-16 float32 step of CB took 35 s on one AMD EPYC thread: 250 steps 2.4 h per seed, 3500 steps 34 h) is
# out of reach, so this is the longest schedule that fits four tasks, two methods and 3 seeds in a few sessions
# of two cores. Learning rates, batch and bf16 stay the cpu preset's, so the step count is the one change.
_CPU_LONG = replace(
    _CPU,
    description="the cpu preset with a 5x longer few-shot schedule (100 steps, dev32 every 20, patience 10)",
    fewshot=replace(_CPU.fewshot, max_steps=100, eval_every_steps=20, patience=10),
)
PRESETS: dict[str, Preset] = {"paper": _PAPER, "cpu": _CPU, "cpu-long": _CPU_LONG}


@dataclass
class SuperGLUEConfig(RunConfig):
    """One SuperGLUE run (one task, setting, backbone, method; several seeds). Serialised with its results."""

    BENCHMARK: ClassVar[str] = "superglue"
    PRESETS: ClassVar[Mapping[str, Preset]] = PRESETS
    DEFAULT_SEEDS: ClassVar[tuple[int, ...]] = DEFAULT_SEEDS  # "3 runs from seed 42"; zero-shot uses the first
    SCHEDULING: ClassVar[tuple[str, ...]] = (*RunConfig.SCHEDULING, "checkpoint_minutes")

    task: str = field(default="rte", metadata={"help": "the task (see tasks/registry.py)", "choices": task_names,
                                               "required": True})
    setting: str = field(default="fewshot", metadata={
        "help": "fewshot (FewGLUE 32 + dev32) | supervised (full train)", "choices": SETTINGS})
    pattern: Optional[str] = field(default=None, metadata={
        "help": "pattern variant of the method's family (None: the task's default; supervised P-tuning searches)"})
    max_length: int = field(default=0, metadata={"help": "tokens per input (0: the preset's for the task)"})
    max_eval: Optional[int] = field(default=FROM_PRESET, metadata={
        "help": "cap every evaluation set at a fixed seeded subset of N examples, whole groups kept "
                "(-1: the preset's per task; None/0: all)"})
    scorer_options: dict[str, str] = field(default_factory=dict, metadata={
        "help": "option for the task kind's scorer, KEY=VALUE, repeatable, e.g. normalize=mean (see repro/scorers/)",
        "flag": "--scorer-option"})
    checkpoint: str = field(default="auto", metadata={
        "help": "mid-seed checkpoints at every dev check: auto (only when the LM is frozen: a fine-tuned LM's "
                "checkpoint holds ~4x its weights) | always | never; finished seeds are always kept",
        "choices": CHECKPOINT_MODES})
    checkpoint_minutes: float = field(default=0.0, metadata={
        "help": "also write a mid-seed checkpoint every X minutes between dev checks (seeds trained alone or in "
                "one frozen-LM pass), so that a long epoch (supervised RTE, WiC) resumes mid-way; turns checkpoints "
                "on under --checkpoint auto, also for a fine-tuned LM (0: at dev checks only)"})

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"unknown setting {self.setting!r}; valid: {', '.join(SETTINGS)}")
        if self.checkpoint not in CHECKPOINT_MODES:
            raise ConfigError(f"unknown checkpoint mode {self.checkpoint!r}; valid: {', '.join(CHECKPOINT_MODES)}")
        if not self.checkpoint_minutes >= 0:
            raise ConfigError(f"--checkpoint-minutes must be 0 (off) or positive, got {self.checkpoint_minutes}")
        if self.checkpoint_minutes and self.checkpoint == "never":
            raise ConfigError("--checkpoint-minutes writes mid-seed checkpoints, which --checkpoint never turns off")
        get_task(self.task)
        super().__post_init__()

    def apply_preset(self, preset: Preset) -> None:
        task = get_task(self.train_task)
        self.dtype = self.dtype or preset.dtype
        self.max_length = self.max_length or preset.max_length_for(task)
        self.eval_batch_size = self.eval_batch_size or preset.eval_batch_size
        self.max_train = resolve_limit(self.max_train, None, "max_train")
        self.max_dev = resolve_limit(self.max_dev, None, "max_dev")
        if self.max_eval != FROM_PRESET:
            resolve_limit(self.max_eval, None, "max_eval")
        if self.train is None:  # the preset's; fidelity item encoder_lr=scripts: the authors' per-task encoder lr
            train = preset.train_config(task, self.setting)
            factor = fid.encoder_lr_factor(self.choices, task.name) if self.setting == "fewshot" else 1.0
            self.train = replace(train, lr_encoder=train.lr_encoder * factor)

    @property
    def train_task(self) -> str:
        """The task whose data trains the model (AX-b, AX-g: RTE)."""
        return get_task(self.task).trained_on or self.task

    def max_eval_for(self, task: str) -> Optional[int]:
        """The evaluation subset size for `task` (None: the full set)."""
        preset_value = PRESETS[self.preset].max_eval_for(get_task(task))
        return resolve_limit(self.max_eval, preset_value, "max_eval")

    @property
    def checkpoint_every_s(self) -> Optional[float]:
        """`checkpoint_minutes` as the training loops take it: seconds, None when off."""
        return self.checkpoint_minutes * 60 or None

    def fingerprint_data(self) -> dict:
        """The config's part of what decides one seed's numbers for the training task and its diagnostics. Not
        the seed list, the task asked for (AX-b reuses RTE's seeds), nor the pattern (per-seed files sit under
        its variant), nor the checkpoint mode: checkpoints never change the numbers (the mode is hashed as its
        default, "auto", which every file written before this rule holds, so their fingerprints stand)."""
        data = super().fingerprint_data()
        for key in ("task", "seeds", "pattern"):
            data.pop(key)
        data["train_task"] = self.train_task
        data["train"].pop("seed")
        data["checkpoint"] = "auto"
        if get_task(self.train_task).shared_prefixes:  # its evaluation runs repro/shared_prefix.py (causal LMs)
            data["shared_prefix_code"] = code_version(shared_prefix.CODE)
        return data

    def fingerprint(self) -> str:
        return fingerprint(self.fingerprint_data())
