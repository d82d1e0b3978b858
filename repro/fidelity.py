"""Fidelity: which side each known difference between the paper's text, the authors' code and the suite follows.

One named choice per run (`RunConfig.fidelity`):
- `suite`: the suite's coherent default (the behaviour before this switch existed; what the committed cpu-preset
  results ran with);
- `paper`: the paper's text where it is explicit, the authors' code where the text is silent;
- `authors`: the authors' code, item for item (THUDM/P-tuning `LAMA/` and `PT-Fewshot/`; PET where they reuse it).
The empty default takes the preset's: `paper` for the paper preset, `suite` for the cpu preset.

The choice resolves into `FidelityChoices`, one field per ledger item (REPRODUCING.md, "Differences"); any item
can be overridden on its own (`--fidelity-item tie_break=last`). The resolved choices are part of every result's
config and fingerprint, and the report prints them. Each item is read in exactly one place:

| item                 | read by                                                            |
|----------------------|--------------------------------------------------------------------|
| tie_break, tie_patience | `repro.core.training.is_improvement` (via TrainConfig)          |
| selection            | `selection_value` (called by `repro.experiment.engine.fit`)        |
| label_shift          | `repro.scorers.vocab.VocabScorer.train_items` (scorer option)      |
| lama_query           | `repro.experiment.lama.method_template`                            |
| lama_mask_order      | `repro.experiment.lama.ptuning_template`                           |
| encoder_lr, lama_lm_lr | the presets (`superglue_config`, `lama`): learning rates          |
| drop_last            | `repro.core.training.train` (via TrainConfig)                      |
| encoder_mlp          | `repro.experiment.engine.new_encoder`                              |
| pattern_search       | `repro.experiment.superglue.search_variants`                       |
| seed_rule            | `repro.experiment.superglue.Engine` (how repetitions are seeded)   |
| frozen_lm_dtype      | `repro.experiment.config.RunConfig.lm_dtype` (the frozen LM's dtype) |
| decay_scope          | `repro.core.training.exempt_from_decay` (via TrainConfig)          |
| pattern_text         | `repro.experiment.superglue.RunPlan.template` (`Task.authors_patterns`) |
| eval_ends            | `repro.core.training` `total_steps_of`, `is_eval_point`, `wants_untrained_check` (via TrainConfig; both loops) |
| truncation           | `repro.experiment.superglue.RunPlan.template` (`Template.with_truncation`)       |
| wsc_masks            | `repro.scorers.span.SpanScorer.pet_masks` (via `ScorerContext.fidelity`)     |
| candidate_train_masks | `repro.scorers.candidates.CandidateScorer.train_items` (via `ScorerContext.fidelity`) |
| decoding             | `repro.experiment.engine.build_scorer` (`repro.pet_decoding.adopt`)                   |
| part_spacing         | `repro.experiment.superglue.RunPlan.template` (`Template.with_spacing`)               |

Items added after results were committed (`ADDED_LATER`) enter a result's fingerprint only when they leave their
default (the behaviour every earlier result ran with), so adding a switch does not mark those results stale; an item
whose other side runs code outside the scorer-code hash (`CHOICE_CODE`) adds that code's hash when chosen
(`fingerprint_view`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping, Optional, Sequence, Union

from repro import metrics
from repro.core.template import SPACING_RULES, TRUNCATION_RULES
from repro.errors import ConfigError

LEVELS = ("suite", "paper", "authors")

Score = Union[float, tuple[float, ...]]


@dataclass(frozen=True)
class FidelityChoices:
    """One value per ledger item (see the module docstring for who reads it)."""

    tie_break: str = "first"  # first: a tied dev score keeps the earlier checkpoint (`>`); last: the later (`>=`)
    tie_patience: str = "count"  # a kept tie: count (a check without gain, PT-Fewshot) | reset (LAMA/cli.py)
    selection: str = "mean"  # mean of the task's metrics | authors (CB, MultiRC, ReCoRD: acc and F1 both >=)
    label_shift: str = "aligned"  # causal LAMA training: aligned | authors (label on the last token: trains one earlier)
    lama_query: str = "suite"  # causal LAMA manual prompt: suite | authors (' ' + prompt cut at [Y]: trailing space token)
    lama_mask_order: str = "paper"  # masked LAMA P-tuning: paper (sub before [MASK]) | code ([MASK] first)
    encoder_lr: str = "paper"  # few-shot encoder lr: paper (1e-4 everywhere) | scripts (1e-5 for CB, WiC, COPA)
    lama_lm_lr: str = "suite"  # LAMA FT/MP+FT LM lr: suite (the preset's) | authors (half: 5e-6 in the paper preset)
    drop_last: str = "keep"  # last incomplete training batch: keep | drop (LAMA/cli.py's train loader)
    encoder_mlp: str = "double"  # few-shot LSTM encoder's MLP middle width: double (2h, PEFT) | single (h, authors)
    pattern_search: str = "length"  # supervised P-tuning searches: length (1, 2, 4 tokens) | positions (authors' list)
    seed_rule: str = "per_run"  # per_run: seed s seeds run s | once: set_seed(first) once, repetitions in sequence
    frozen_lm_dtype: str = "preset"  # a frozen LM computes in: preset (the preset's dtype) | float16 (LAMA/ code)
    decay_scope: str = "norms"  # LM weight decay spares: norms (biases, norms, 1-D) | pet (names with bias or
    #                             LayerNorm.weight, PT-Fewshot) | all (nothing spared, LAMA/cli.py)
    pattern_text: str = "suite"  # a task's pattern text: suite | authors (the task's `authors_patterns` overrides)
    eval_ends: str = "suite"  # first/last dev checks: suite (scheduled checks and the last step) | lama (an
    #                           untrained check that is never kept; none after the last step) | fewshot
    #                           (max_steps + 1 steps, the last one checked only on schedule)
    truncation: str = "longest"  # an over-long input loses tokens off: longest (the longest shortenable slot) |
    #                              last (PET's PVP.truncate: the last shortenable slot of the fuller segment)
    wsc_masks: str = "exact"  # WSC [MASK]s on a masked LM: exact (the span's tokens) | pet (+1 at evaluation,
    #                           +0..3 <pad> targets in training)
    candidate_train_masks: str = "own"  # COPA/ReCoRD training on a masked LM: own (each candidate's mask count) |
    #                                     max (PET: the longest candidate's count for all, the shorter at the first)
    decoding: str = "joint"  # several masks on a masked LM (COPA, ReCoRD, WSC): joint (one forward) | pet (one
    #                          mask at a time, most confident first, the model rerun after each: PET's task helpers)
    part_spacing: str = "template"  # byte-level BPE tokenizers: template (the template's own spaces) | pet (each
    #                                 part with a leading space, PET's PVP.encode `add_prefix_space=True`)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in VALUES[f.name]:
                raise ConfigError(f"fidelity item {f.name}={value!r}; valid: {', '.join(VALUES[f.name])}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


VALUES: dict[str, tuple[str, ...]] = {
    "tie_break": ("first", "last"),
    "tie_patience": ("count", "reset"),
    "selection": ("mean", "authors"),
    "label_shift": ("aligned", "authors"),
    "lama_query": ("suite", "authors"),
    "lama_mask_order": ("paper", "code"),
    "encoder_lr": ("paper", "scripts"),
    "lama_lm_lr": ("suite", "authors"),
    "drop_last": ("keep", "drop"),
    "encoder_mlp": ("double", "single"),
    "pattern_search": ("length", "positions"),
    "seed_rule": ("per_run", "once"),
    "frozen_lm_dtype": ("preset", "float16"),
    "decay_scope": ("norms", "pet", "all"),
    "pattern_text": ("suite", "authors"),
    "eval_ends": ("suite", "lama", "fewshot"),
    "truncation": TRUNCATION_RULES,
    "wsc_masks": ("exact", "pet"),
    "candidate_train_masks": ("own", "max"),
    "decoding": ("joint", "pet"),
    "part_spacing": SPACING_RULES,
}

# Items added after committed results existed: their default is what those results ran with (see the module doc).
ADDED_LATER = ("decoding", "part_spacing")
# The other side of an item that runs code of its own, outside `repro.experiment.fingerprints.SCORER_CODE`.
CHOICE_CODE = {("decoding", "pet"): ("repro/pet_decoding.py",)}


def fingerprint_view(choices: FidelityChoices) -> dict[str, str]:
    """The choices as a result's fingerprint holds them: `ADDED_LATER` items only when they leave their default,
    plus the code hash of every chosen side listed in `CHOICE_CODE` (`<item>_code`)."""
    from repro.experiment.fingerprints import code_version  # here: fidelity is imported by the fingerprint code

    defaults = FidelityChoices()
    view = {k: v for k, v in choices.to_dict().items() if k not in ADDED_LATER or v != getattr(defaults, k)}
    for (item, value), paths in CHOICE_CODE.items():
        if getattr(choices, item) == value:
            view[f"{item}_code"] = code_version(paths)
    return view

# The authors' code, per benchmark. LAMA/ and PT-Fewshot/ differ in how a kept tie counts for patience, in the
# last batch, in the frozen LM's precision (LAMA/p_tuning/models.py halves it; PT-Fewshot always trains the LM,
# in fp32), in which LM weights decay (LAMA/cli.py: all; PT-Fewshot/pet/wrapper.py: PET's name rule) and in
# where training starts and ends its dev checks (LAMA/cli.py Trainer.train; PT-Fewshot/pet/wrapper.py train).
_COMMON = dict(tie_break="last", selection="authors", label_shift="authors", lama_query="authors",
               lama_mask_order="code", encoder_lr="scripts", lama_lm_lr="authors", encoder_mlp="single",
               pattern_search="positions", seed_rule="once", pattern_text="authors", truncation="last",
               wsc_masks="pet", candidate_train_masks="max")
_AUTHORS = {
    "lama": FidelityChoices(**_COMMON, tie_patience="reset", drop_last="drop", frozen_lm_dtype="float16",
                            decay_scope="all", eval_ends="lama"),
    "superglue": FidelityChoices(**_COMMON, tie_patience="count", drop_last="keep", frozen_lm_dtype="preset",
                                 decay_scope="pet", eval_ends="fewshot", decoding="pet", part_spacing="pet"),
}
# Where the paper's text is explicit it wins over the code: LAMA's (3, sub, 3, obj, 3) puts the subject before
# [MASK]; the target is predicted where it stands (no shifted label, no stray space token: the manual prompts
# are LAMA's, "[X] is located in [Y] ."); the prompt encoder's lr is 1e-4 ("learning rate 1e-4" for the few-shot
# encoder). Everything else follows the authors' code: the text is silent on the frozen LM's precision, on which
# weights decay, on the word marker's spacing in WiC's pattern, on where training starts and ends its checks and
# on which text an over-long input loses first.
_PAPER_TEXT = dict(label_shift="aligned", lama_query="suite", lama_mask_order="paper", encoder_lr="paper")


def resolve(level: str, benchmark: str, overrides: Optional[Mapping[str, str]] = None) -> FidelityChoices:
    """The choices of a fidelity level for a benchmark ("lama" | "superglue"), then per-item overrides."""
    if level not in LEVELS:
        raise ConfigError(f"unknown fidelity {level!r}; valid: {', '.join(LEVELS)}")
    authors = _AUTHORS.get(benchmark, _AUTHORS["superglue"])
    base = {"suite": FidelityChoices(), "authors": authors, "paper": replace(authors, **_PAPER_TEXT)}[level]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(VALUES))
    if unknown:
        raise ConfigError(f"unknown fidelity item(s) {', '.join(unknown)}; valid: {', '.join(VALUES)}")
    return replace(base, **overrides)


def default_level(preset: str) -> str:
    """The fidelity a preset runs with when none is named: the paper preset reproduces the paper."""
    return "paper" if preset == "paper" else "suite"


# ------------------------------------------------------------------------------------------ model selection
# PT-Fewshot/pet/wrapper.py, TransformerModelWrapper.train: for cb, record and multirc a dev32 check is kept when
# accuracy and F1 are both at least the best so far (CB: macro-F1; MultiRC: accuracy and binary F1 over the
# answer options); the other tasks keep on accuracy alone.
AUTHORS_SELECTION = {"cb": ("acc", "f1_macro"), "multirc": ("option_acc", "f1a"), "record": ("acc", "f1")}


def selection_value(task, examples: Sequence[Any], predictions: Sequence[Any], scores: Mapping[str, float],
                    rule: str) -> Score:
    """The dev score model selection compares: `mean` the task's own selection score (a float); `authors` the
    authors' metrics as a tuple (compared component-wise by `repro.core.training.is_improvement`)."""
    if rule == "mean":
        return task.selection_score(scores)
    if rule != "authors":
        raise ConfigError(f"unknown selection rule {rule!r}; valid: {', '.join(VALUES['selection'])}")
    names = AUTHORS_SELECTION.get(task.name)
    if names is None:
        return task.selection_score(scores)
    values = []
    for name in names:
        if name == "option_acc":  # accuracy over answer options (each option one example)
            values.append(metrics.accuracy(list(predictions), task.golds(examples)))
        else:
            values.append(scores[name])
    return tuple(float(v) for v in values)


# ------------------------------------------------------------------------------------------- learning rates
# PT-Fewshot/scripts/*_pt_few_shot.sh: cb, wic and copa pass no --learning_rate, so cli.py's default 1e-5 is the
# encoder's lr there; boolq, multirc, rte and wsc pass 1e-4 (the paper's value).
SCRIPT_ENCODER_LR_FACTOR = {"cb": 0.1, "wic": 0.1, "copa": 0.1}
# LAMA/cli.py, Trainer.train: the fine-tuned LM's parameter group has lr 5e-6, half the 1e-5 of `--lr`.
AUTHORS_LAMA_LM_LR_FACTOR = 0.5


def encoder_lr_factor(choices: FidelityChoices, task: str) -> float:
    return SCRIPT_ENCODER_LR_FACTOR.get(task, 1.0) if choices.encoder_lr == "scripts" else 1.0


def lama_lm_lr_factor(choices: FidelityChoices) -> float:
    return AUTHORS_LAMA_LM_LR_FACTOR if choices.lama_lm_lr == "authors" else 1.0


def parse_items(items: Union[Mapping[str, str], Sequence[str], None]) -> dict[str, str]:
    """`{"tie_break": "last"}` or `["tie_break=last", ...]` -> a dict (unknown keys are refused by `resolve`)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ConfigError(f"--fidelity-item takes ITEM=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
