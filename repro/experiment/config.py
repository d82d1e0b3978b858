"""The run configuration every benchmark shares: one dataclass with presets, validation and a fingerprint.

`RunConfig` holds what any run has (backbone, method, preset, seeds, prompt encoder, dtype, data limits,
training settings); `LamaConfig` and `SuperGLUEConfig` add their own fields and presets. The command line is
built from these fields and their `help`/`choices` metadata (`repro.cli`), so a flag means the same thing in
every subcommand.

Data limits (`max_train`, `max_dev`, SuperGLUE's `max_eval`): `FROM_PRESET` (the default) takes the preset's
value, `None` means all examples, a positive N a fixed seeded subset of N (kept in file order).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Mapping, Optional

from repro import fidelity as fid
from repro.core.training import TrainConfig
from repro.errors import ConfigError
from repro.methods import PAPER_ENCODER, Method, get_method, method_names
from repro.validate import check_config

FROM_PRESET = -1  # a data limit that the preset decides
DTYPE_CHOICES = ("float32", "bfloat16")
ENCODERS = ("lstm", "mlp", "none")  # none: the prompt embeddings trained directly (no reparameterisation)
MAX_SEED_COUNT = 10  # a bare count above this is far more likely a seed typed without its comma ("--seeds 42")


def seeds_from_count(count: int, first: int, where: str) -> list[int]:
    """Seeds first, first+1, ... for a count; `where` names the flag or field in the error.

    A count above MAX_SEED_COUNT is refused: `--seeds 42` meant seed 42 far more often than 42 runs."""
    if count <= 0:
        raise ConfigError(f"{where} count must be positive, got {count}")
    if count > MAX_SEED_COUNT:
        raise ConfigError(
            f"{where} {count} asks for {count} seeds ({first}..{first + count - 1}); for seed {count} alone "
            f"write '{count},', and list more than {MAX_SEED_COUNT} seeds by name (S1,S2,...)")
    return [first + i for i in range(count)]


def seeds_from_text(text: str, first: int, where: str) -> list[int]:
    """A count N (seeds first, first+1, ... as `seeds_from_count`) or a comma-separated list ("42," is seed 42
    alone); `where` names the flag or field in the error. The command line and sweep specs both read seeds so."""
    text = str(text).strip()
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        count = int(text)
    except ValueError:
        raise ConfigError(f"{where} takes a count or a comma-separated list of integers, got {text!r}") from None
    return seeds_from_count(count, first, where)


def fingerprint(data: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able description (what decides a unit's numbers)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_limit(value: Optional[int], preset_value: Optional[int], name: str) -> Optional[int]:
    """`FROM_PRESET` -> the preset's; None -> all; N > 0 -> N. Anything else is refused by name."""
    if value == FROM_PRESET:
        return preset_value
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{name} must be a positive number of examples (or all), got {value!r}")
    return value


@dataclass
class RunConfig:
    """Fields every run has. Subclasses set BENCHMARK and PRESETS and resolve preset defaults in
    `apply_preset`. Serialised next to the results, so the same config reruns the same numbers."""

    BENCHMARK: ClassVar[str] = ""
    PRESETS: ClassVar[Mapping[str, Any]] = {}
    DEFAULT_SEEDS: ClassVar[tuple[int, ...]] = (42,)

    backbone: str = field(default="smollm2-135m", metadata={"help": "embedded name, local model dir or hub id"})
    method: str = field(default="ptuning", metadata={"help": "the method (see repro/methods.py)"})
    preset: str = field(default="cpu", metadata={
        "help": "paper (the authors' settings) | cpu (2-core schedule) | SuperGLUE's cpu-long (cpu, 5x the steps)"})
    seeds: list[int] = field(default_factory=list, metadata={
        "help": f"training seeds: a count N (at most {MAX_SEED_COUNT}, counted from the benchmark's first seed) "
                "or a list S1,S2 (one seed: 'S,')"})
    encoder: str = field(default="", metadata={
        "help": "prompt encoder: lstm (the paper's) | mlp (PEFT's default) | none (no reparameterisation: the "
                "prompt embeddings trained directly); empty: the preset's (LAMA's cpu preset: mlp, chosen on dev; "
                "every other preset: lstm)", "choices": ("",) + ENCODERS})
    encoder_hidden: int = field(default=0, metadata={
        "help": "LSTM size per direction / MLP width (0: the authors' default for the benchmark; none has no width)"})
    dtype: str = field(default="", metadata={"help": "float32 | bfloat16 (empty: the preset's)",
                                             "choices": ("",) + DTYPE_CHOICES})
    eval_batch_size: int = field(default=0, metadata={"help": "examples per evaluation batch (0: the preset's)"})
    max_train: Optional[int] = field(default=FROM_PRESET, metadata={
        "help": "training examples per unit, a seeded subset (-1: the preset's; None/0 on the command line: all)"})
    max_dev: Optional[int] = field(default=FROM_PRESET, metadata={
        "help": "model-selection examples per unit, a seeded subset (-1: the preset's; None/0: all)"})
    train: Optional[TrainConfig] = field(default=None, metadata={"help": "training settings (None: the preset's)"})
    fidelity: str = field(default="", metadata={
        "help": "whose behaviour each known difference follows: suite | paper (the paper's text, the authors' code "
                "where it is silent) | authors (their code); empty: the preset's (paper -> paper, cpu -> suite). "
                "REPRODUCING.md, Differences", "choices": ("",) + fid.LEVELS})
    fidelity_items: dict[str, str] = field(default_factory=dict, metadata={
        "help": "override one fidelity item, ITEM=VALUE, repeatable, e.g. tie_break=last (see repro/fidelity.py)",
        "flag": "--fidelity-item"})
    sequential: bool = field(default=False, metadata={
        "help": "one unit at a time, even where units could share one frozen LM's passes (P-tuning on a frozen "
                "LM trains all relations/seeds jointly by default; MP evaluates all relations in one pass); "
                "the same numbers by design, so not part of the fingerprint"})
    recompute_activations: bool = field(default=False, metadata={
        "help": "a trained LM (FT, MP+FT, PET-FT, P-tuning, CLS-FT; a frozen one ignores it) keeps only each "
                "layer's input for the backward pass and recomputes the rest (gradient checkpointing): a fraction "
                "of the memory (a supervised RTE seed held 16.7 GB without it) for more compute; the same "
                "numbers, so not part of the fingerprint"})

    def __post_init__(self) -> None:
        get_method(self.method, self.BENCHMARK)
        if self.preset not in self.PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; valid: {', '.join(self.PRESETS)}")
        self.encoder = self.encoder or self.preset_encoder
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        self.seeds = [int(s) for s in (self.seeds or self.DEFAULT_SEEDS)]
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct, got {self.seeds}")
        if self.encoder_hidden < 0 or self.eval_batch_size < 0:
            raise ConfigError("encoder_hidden and eval_batch_size must be 0 (default) or positive")
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        self.fidelity = self.fidelity or fid.default_level(self.preset)
        self.fidelity_items = fid.parse_items(self.fidelity_items)
        self.choices = fid.resolve(self.fidelity, self.BENCHMARK, self.fidelity_items)
        self.apply_preset(self.PRESETS[self.preset])
        self.train = replace(self.train, tie_break=self.choices.tie_break, tie_patience=self.choices.tie_patience,
                             drop_last=self.choices.drop_last == "drop", reseed=self.choices.seed_rule == "per_run",
                             decay_scope=self.choices.decay_scope, eval_ends=self.choices.eval_ends)
        if self.dtype not in DTYPE_CHOICES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPE_CHOICES)}")
        check_config(self)  # ranges and combinations (repro/validate.py), once the preset has filled the fields

    def apply_preset(self, preset: Any) -> None:
        """Fill every field left to the preset (dtype, batch sizes, limits, training settings)."""
        raise NotImplementedError

    @property
    def method_entry(self) -> Method:
        return get_method(self.method, self.BENCHMARK)

    @property
    def zero_shot(self) -> bool:
        return self.method_entry.zero_shot

    def lm_dtype(self, method: Method) -> str:
        """The dtype the LM computes in for `method`: the preset's (`dtype`), except a frozen LM under fidelity
        item `frozen_lm_dtype=float16`, whose weights are cast to float16 as THUDM/P-tuning
        `LAMA/p_tuning/models.py` create_model does (`model.half()` unless the LM is fine-tuned). A trained LM
        keeps the preset's dtype (fp32 master weights, autocast for bf16)."""
        if self.choices.frozen_lm_dtype == "float16" and not method.trains_backbone:
            return "float16"
        return self.dtype

    # The default preset: a run of another preset gets its own results folder.
    DEFAULT_PRESET: ClassVar[str] = "cpu"

    @property
    def preset_encoder(self) -> str:
        """The prompt encoder an unset `encoder` takes: the preset's (`Preset.encoder`, where a benchmark's presets
        name one), else the paper's. A method without an encoder records the paper's, which it never reads, so its
        fingerprint does not move when a preset's encoder does."""
        if not self.method_entry.uses_encoder:
            return PAPER_ENCODER
        return getattr(self.PRESETS[self.preset], "encoder", PAPER_ENCODER)

    @property
    def variant(self) -> str:
        """What sets this run's folder apart from its method's default runs: an encoder other than the preset's
        and/or a preset other than the default ("lstm", "none", "paper", "none-paper"), "" for the default, so an
        ablation or a paper-schedule run never recomputes over (and overwrites) the default run's result files."""
        parts = []
        if self.method_entry.uses_encoder and self.encoder != self.preset_encoder:
            parts.append(self.encoder)
        if self.preset != self.DEFAULT_PRESET:
            parts.append(self.preset)
        return "-".join(parts)

    def default_encoder_hidden(self, dim: int) -> int:
        """The encoder width when `encoder_hidden` is 0 (the benchmark's authors' code decides)."""
        return dim

    def resolved_encoder_hidden(self, dim: int) -> int:
        return self.encoder_hidden or self.default_encoder_hidden(dim)

    # How units are scheduled and computed, not what they compute: left out of the serialised config (and so of
    # fingerprints).
    SCHEDULING: ClassVar[tuple[str, ...]] = ("sequential", "recompute_activations")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "train" and f.name not in self.SCHEDULING}
        data["train"] = self.train.to_dict()
        data["fidelity_choices"] = self.choices.to_dict()
        return data

    def fingerprint_data(self) -> dict[str, Any]:
        """The serialised config as a fingerprint holds it: the fidelity choices as `repro.fidelity.fingerprint_view`
        gives them (a switch added later counts only when chosen). Subclasses drop what does not decide a unit."""
        data = self.to_dict()
        data["fidelity_choices"] = fid.fingerprint_view(self.choices)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def method_choices(cls) -> tuple[str, ...]:
        return method_names(cls.BENCHMARK)

