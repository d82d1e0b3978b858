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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Optional

from repro.core.backbone import DEFAULT_BACKBONE, DTYPES
from repro.errors import ConfigError
from repro.methods import get_method, method_names
from repro.core.training import TrainConfig
from tasks.base import SETTINGS, Task
from tasks.registry import TASKS, get_task

DEFAULT_SEEDS = (42, 43, 44)  # "3 runs from seed 42"
CHECKPOINT_MODES = ("auto", "always", "never")
ENCODERS = ("lstm", "mlp")


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

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        description="the authors' few-shot code and the paper's supervised grid defaults",
        fewshot=TrainConfig(optimizer="adamw", lr_encoder=1e-4, lr_backbone=1e-5, weight_decay=0.1, encoder_weight_decay=0.0,
                            adam_eps=1e-8, schedule="linear", warmup_ratio=0.0, batch_size=16, max_steps=3500, eval_every_steps=20,
                            patience=10, max_grad_norm=1.0, seed=42),
        supervised=TrainConfig(optimizer="adamw", lr_encoder=1e-4, lr_backbone=1e-5, weight_decay=0.1,
                               encoder_weight_decay=0.0, adam_eps=1e-8, schedule="linear", batch_size=16, max_epochs=20, patience=5,
                               max_grad_norm=1.0, seed=42),
        supervised_large_epochs=10,
        dtype="float32", max_length=256, eval_batch_size=32, authors_task_settings=True, eval_subsets=False,
    ),
    "cpu": Preset(
        description="the paper's recipe scaled to 2 CPU cores (fewer, larger steps; bf16; large dev sets subsampled)",
        fewshot=TrainConfig(optimizer="adamw", lr_encoder=1e-3, lr_backbone=2e-5, weight_decay=0.1, encoder_weight_decay=0.0,
                            adam_eps=1e-8, schedule="linear", warmup_ratio=0.0, batch_size=8, max_steps=20, eval_every_steps=10,
                            patience=2, max_grad_norm=1.0, seed=42),
        supervised=TrainConfig(optimizer="adamw", lr_encoder=1e-3, lr_backbone=2e-5, weight_decay=0.1,
                               encoder_weight_decay=0.0, adam_eps=1e-8, schedule="linear", batch_size=16, max_epochs=2, patience=1,
                               max_grad_norm=1.0, seed=42),
        supervised_large_epochs=1,
        dtype="bfloat16", max_length=256, eval_batch_size=32, authors_task_settings=False, eval_subsets=True,
    ),
}


@dataclass
class SuperGLUEConfig:
    """One SuperGLUE run (one task, setting, backbone, method; several seeds). Serialised with its results."""

    task: str = field(default="rte", metadata={"help": f"one of {', '.join(TASKS)}"})
    setting: str = field(default="fewshot", metadata={"help": "fewshot (FewGLUE 32 + dev32) | supervised (full train)"})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "embedded name, local model dir or hub id"})
    method: str = field(default="ptuning", metadata={"help": ", ".join(method_names("superglue"))})
    preset: str = field(default="cpu", metadata={"help": ", ".join(PRESETS)})
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS),
                             metadata={"help": "training seeds (the paper: 3 runs from 42); zero-shot uses the first"})
    pattern: Optional[str] = field(default=None, metadata={
        "help": "pattern variant of the method's family (None: the task's default; supervised P-tuning searches)"})
    encoder: str = field(default="lstm", metadata={"help": "prompt encoder: lstm (the authors') | mlp (PEFT's default)"})
    encoder_hidden: int = field(default=0, metadata={
        "help": "LSTM size per direction / MLP width (0: the LM's embedding size, as the few-shot code)"})
    dtype: str = field(default="", metadata={"help": "float32 | bfloat16 (empty: the preset's)"})
    max_length: int = field(default=0, metadata={"help": "tokens per input (0: the preset's for the task)"})
    eval_batch_size: int = field(default=0, metadata={"help": "examples per evaluation batch (0: the preset's)"})
    max_eval: Optional[int] = field(default=-1, metadata={
        "help": "cap every evaluation set at a fixed seeded subset of N examples, whole groups kept "
                "(-1: the preset's per task; None: all)"})
    max_train: Optional[int] = field(default=None, metadata={"help": "use only the first N training examples"})
    max_dev: Optional[int] = field(default=None, metadata={"help": "use only the first N model-selection examples"})
    train: Optional[TrainConfig] = field(default=None, metadata={"help": "training settings (None: the preset's)"})
    scorer_options: dict[str, str] = field(default_factory=dict, metadata={
        "help": "options for the task kind's scorer, e.g. {'normalize': 'mean'} (see repro/superglue/scorers.py)"})
    checkpoint: str = field(default="auto", metadata={
        "help": "mid-seed checkpoints at every dev check: auto (only when the LM is frozen: a fine-tuned LM's "
                "checkpoint holds ~4x its weights) | always | never; finished seeds are always kept"})

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"unknown setting {self.setting!r}; valid: {', '.join(SETTINGS)}")
        get_method(self.method, "superglue")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        if self.checkpoint not in CHECKPOINT_MODES:
            raise ConfigError(f"unknown checkpoint mode {self.checkpoint!r}; valid: {', '.join(CHECKPOINT_MODES)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {self.seeds}")
        get_task(self.task)
        preset = PRESETS[self.preset]
        self.seeds = [int(s) for s in self.seeds]
        self.dtype = self.dtype or preset.dtype
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        self.max_length = self.max_length or preset.max_length_for(get_task(self.train_task))
        self.eval_batch_size = self.eval_batch_size or preset.eval_batch_size
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        self.train = self.train or preset.train_config(get_task(self.train_task), self.setting)

    @property
    def train_task(self) -> str:
        """The task whose data trains the model (AX-b, AX-g: RTE)."""
        return get_task(self.task).trained_on or self.task

    def max_eval_for(self, task: str) -> Optional[int]:
        """The evaluation subset size for `task` (None: the full set)."""
        return PRESETS[self.preset].max_eval_for(get_task(task)) if self.max_eval == -1 else self.max_eval

    @property
    def zero_shot(self) -> bool:
        return get_method(self.method, "superglue").zero_shot

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "train"}
        data["train"] = asdict(self.train)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SuperGLUEConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def fingerprint(self) -> str:
        """What decides one seed's numbers for the training task and its diagnostics. Not the seed list, the
        task asked for (AX-b reuses RTE's seeds), nor the pattern (per-seed files sit under its variant)."""
        data = self.to_dict()
        for key in ("task", "seeds", "pattern"):
            data.pop(key)
        data["train_task"] = self.train_task
        data["train"].pop("seed")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
