"""What a SuperGLUE task adapter declares: how to read its files, its patterns, its answer space, its metric.

An adapter knows its data format and patterns and nothing of models. Three kinds of answer space, each scored
by the scorer the engine registers for it (`repro.scorers.base`):
- `classification`: a label from a fixed set, read through a verbalizer (label -> word) at the target
  (BoolQ, CB, RTE, WiC, MultiRC, AX-b, AX-g);
- `candidates`: one of an example's own multi-token candidates wins (COPA's two choices, ReCoRD's entities);
- `span`: the target is a span of text produced at the target, judged by a matching rule (WSC).

Patterns are template strings (see `repro.core.template`) over the example's `values`, one family per method
template: `manual` (PET's patterns, used by MP and MP-FT), `ptuning` (prompt tokens and anchors; named
variants, the first being the paper's few-shot pattern; the supervised setting chooses among them on dev),
and `classifier` (the plain input for CLS-FT, no [MASK]). A pattern does not depend on the example: anything
that varies per example (COPA's "because"/"so") is a slot value.

Diagnostics (AX-b, AX-g) have no training data: `trained_on` names the task whose model evaluates them, and
that task lists them in `diagnostics`, so that one training run evaluates all three.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from repro.errors import ConfigError, DataError
from repro.core.template import Slot, Target, Template
from repro.splits import load_jsonl, rows

KINDS = ("classification", "candidates", "span", "vocab")
STYLES = ("manual", "ptuning", "classifier")
SETTINGS = ("fewshot", "supervised")
PATTERN_TEXTS = ("suite", "authors")


@dataclass
class Example:
    """One evaluation unit. `uid` is "<file>:<line>" so that messages point at the data."""

    uid: str
    values: dict[str, str]  # slot values for the patterns
    label: Any  # classification: the label key; candidates: index of the right candidate; span: bool or None
    candidates: tuple[str, ...] = ()  # COPA choices, ReCoRD entities, WSC's span
    group: Optional[str] = None  # MultiRC question id, AX-g pair key, ReCoRD query id
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFiles:
    """Where a task's splits live under the data root (None: the task has no such split)."""

    fewshot_train: Optional[str]
    fewshot_dev: Optional[str]
    eval: str  # the SuperGLUE dev set, the paper's evaluation set in both settings (diagnostics: their file)
    supervised_train: Optional[str]

    def train(self, setting: str) -> Optional[str]:
        return self.fewshot_train if setting == "fewshot" else self.supervised_train

    def dev(self, setting: str) -> Optional[str]:
        """Model selection: FewGLUE's dev32 few-shot; the evaluation set itself supervised (as the paper did)."""
        return self.fewshot_dev if setting == "fewshot" else self.eval


class Task:
    """Base class of the adapters. Subclasses set the class attributes and implement `example` and `score`."""

    name: str = ""  # CLI name, e.g. "cb"
    folder: str = ""  # SuperGLUE folder, e.g. "CB"
    kind: str = "classification"
    # --- what the report, the tables and the presets read (every fact about the task, here)
    paper_name: str = ""  # the paper's column name, e.g. "CB" (empty: `name`)
    metrics: tuple[str, ...] = ("acc",)  # metric keys of the results (percent), in column order
    in_paper_tables: bool = True  # a column of the paper's SuperGLUE tables (ReCoRD, diagnostics: extra columns)
    in_avg: bool = True  # counts in the SuperGLUE Avg (mean of its metrics first, then over tasks)
    large_train_set: bool = False  # supervised presets give it fewer epochs
    paper_fewshot_steps: Optional[int] = None  # the authors' few-shot step count where it differs from 3500
    paper_max_length: Optional[int] = None  # the authors' input length where it differs from 256
    cpu_eval_subset: Optional[int] = None  # the cpu preset evaluates a fixed seeded subset of this many examples
    shared_prefixes: bool = False  # examples repeat a long start (a passage): causal LMs run it once (repro.shared_prefix)
    dev32_sha256: Optional[str] = None  # the authors' FewGLUE dev32 file, pinned for fetching
    required_fields: tuple[str, ...] = ()
    labels: tuple[Any, ...] = ()  # classification: label keys as in the jsonl files
    verbalizer: Mapping[Any, str] = {}  # classification: label key -> word
    manual_patterns: Mapping[str, str] = {}  # name -> template; the first is the default
    ptuning_patterns: Mapping[str, str] = {}  # name -> template; the first is the paper's few-shot pattern
    # The authors' searched patterns for the supervised setting (THUDM/P-tuning PT-Fewshot/data_utils/task_pvps.py,
    # commit df0c180: the "searched patterns in fully-supervised" comments of each PVP, where "the" marks a
    # prompt token), named s1, s2, ...: what fidelity item pattern_search=positions searches.
    searched_patterns: Mapping[str, str] = {}
    # Variants (by name, any style) as the authors' code writes them, where a template cannot say it the suite's
    # way (PET's `PVP.encode` tokenizes each of its parts alone, so the part boundaries decide the tokens): what
    # fidelity item pattern_text=authors renders instead. Needs only this declaration, plus any slot value the
    # text uses, prepared in `example` (WiC: the marked word as one part).
    authors_patterns: Mapping[str, str] = {}
    classifier_pattern: str = ""  # CLS-FT input, no [MASK] (candidate tasks: one per candidate, in {choice})
    trained_on: Optional[str] = None  # diagnostics: the task whose model evaluates them (RTE)
    diagnostics: tuple[str, ...] = ()  # tasks evaluated with this task's model (RTE: axb, axg)
    eval_fallback: Optional[str] = None  # evaluated instead when `files().eval` is missing (results: partial)
    notes: tuple[str, ...] = ()  # preprocessing choices, copied into every result of the task

    @property
    def display_name(self) -> str:
        """The paper's name where the paper has the task, else ours."""
        return self.paper_name or self.name

    @property
    def is_diagnostic(self) -> bool:
        """Evaluated with another task's model (AX-b, AX-g with RTE's)."""
        return self.trained_on is not None

    # ------------------------------------------------------------------ data
    def files(self) -> TaskFiles:
        return TaskFiles(
            fewshot_train=f"fewglue/{self.folder}/train.jsonl",
            fewshot_dev=f"fewglue/{self.folder}/dev32.jsonl",
            eval=f"superglue/{self.folder}/val.jsonl",
            supervised_train=f"superglue/{self.folder}/train.jsonl",
        )

    def read(self, path: Path) -> list[Example]:
        """All examples of a jsonl file, from its Dataset (`repro.splits`); a bad line fails with file:line and
        the field, an empty file by name."""
        return self.examples_of(rows(load_jsonl(path, required=self.required_fields, allow_empty=False)), str(path))

    def examples_of(self, numbered: Iterable[tuple[Any, dict[str, Any]]], source: str) -> list[Example]:
        """The examples of `(line, row)` pairs read from `source` (a file, or a hub split); a row that does not
        make an example fails as `source:line: ...`, and that is each example's `uid` too."""
        examples: list[Example] = []
        for lineno, row in numbered:
            where = f"{source}:{lineno}"
            try:
                examples.extend(self.example(row, where))
            except DataError as err:
                raise DataError(str(err) if str(err).startswith(where) else f"{where}: {err}") from None
            except KeyError as err:
                raise DataError(f"{where}: missing field {err}") from None
            except (TypeError, ValueError, AttributeError) as err:
                raise DataError(f"{where}: {err}") from None
        return examples

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        """The examples of one jsonl row (MultiRC: one per answer option)."""
        raise NotImplementedError

    def train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """The examples a scorer trains on: all of them here; a task may select (WSC: positives only) or
        augment (COPA: mirrored choices)."""
        return list(examples)

    def classifier_train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """The examples CLS-FT trains on (`repro.scorers.classifier`): those `train_examples` selects, here; a
        task whose selection serves its verbalizer or span scoring only (WSC's positives) says otherwise."""
        return self.train_examples(examples)

    # ------------------------------------------------------------------ patterns
    def patterns(self, style: str) -> Mapping[str, str]:
        if style not in STYLES:
            raise ConfigError(f"unknown pattern style {style!r}; valid: {', '.join(STYLES)}")
        if style == "classifier":
            return {"classifier": self.classifier_pattern} if self.classifier_pattern else {}
        if style == "manual":
            return self.manual_patterns
        return {**self.ptuning_patterns, **self.searched_patterns}

    def pattern(self, style: str, variant: Optional[str] = None, text: str = "suite") -> str:
        """The template string of a style's variant (None: the style's default, its first variant); `text`
        (fidelity item pattern_text): `suite`, or `authors` for the task's `authors_patterns` where it has one."""
        family = self.patterns(style)
        if not family:
            raise ConfigError(f"task {self.name!r} has no {style} pattern")
        name = variant or next(iter(family))
        if name not in family:
            raise ConfigError(f"task {self.name!r} has no {style} pattern {name!r}; valid: {', '.join(family)}")
        if text not in PATTERN_TEXTS:
            raise ConfigError(f"unknown pattern text {text!r}; valid: {', '.join(PATTERN_TEXTS)}")
        return self.authors_patterns.get(name, family[name]) if text == "authors" else family[name]

    def pattern_variants(self, style: str) -> tuple[str, ...]:
        return tuple(self.patterns(style))

    def template(self, style: str, variant: Optional[str] = None, text: str = "suite") -> Template:
        return Template.parse(self.pattern(style, variant, text), allow_no_target=style == "classifier")

    def default_variant(self, style: str, *, causal: bool) -> str:
        """The first variant of the style; for a causal LM the first one whose input slots all precede [MASK]
        (a causal LM sees nothing after its target, so PET's RTE/CB pattern, premise after the mask, is out)."""
        variants = self.pattern_variants(style)
        if not variants:
            raise ConfigError(f"task {self.name!r} has no {style} pattern")
        if not causal:
            return variants[0]
        for name in variants:
            if not slots_after_target(self.template(style, name)):
                return name
        raise ConfigError(f"task {self.name!r}: every {style} pattern puts input after [MASK], "
                          "which a causal LM cannot see")

    # ------------------------------------------------------------------ scoring
    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """The task's metrics (percent) from predictions aligned with `examples`."""
        raise NotImplementedError

    def selection_score(self, scores: Mapping[str, float]) -> float:
        """Model selection on dev: the mean of the task's metrics (CB: acc and F1; MultiRC: EM and F1a)."""
        return sum(scores[m] for m in self.metrics) / len(self.metrics)


class ClassificationTask(Task):
    """A label from a fixed set; the verbalizer maps every label to one word."""

    kind = "classification"

    def golds(self, examples: Sequence[Example]) -> list[Any]:
        missing = [ex.uid for ex in examples if ex.label is None]
        if missing:
            raise DataError(f"{missing[0]}: no gold label to score against ({len(missing)} unlabeled example(s))")
        return [ex.label for ex in examples]


def label_index(task: Task, label: Any, uid: str) -> Any:
    """Check a gold label against the task's label set (None is allowed: unlabeled test data)."""
    if label is not None and label not in task.labels:
        where = f"{uid}: " if uid else ""
        raise DataError(f"{where}field 'label' is {label!r}; valid: {', '.join(map(repr, task.labels))}")
    return label


def slots_after_target(template: Template) -> tuple[str, ...]:
    """Input slots that come after [MASK] (invisible to a causal LM)."""
    seen_target = False
    after: list[str] = []
    for part in template.parts:
        if isinstance(part, Target):
            seen_target = True
        elif seen_target and isinstance(part, Slot):
            after.append(part.name)
    return tuple(after)


def prompt_length_variants(pattern: str, lengths: Sequence[int] = (2, 4)) -> dict[str, str]:
    """Variants of a P-tuning pattern with every `[P]` run `n` times as long, named `p<n>`: the supervised
    setting's pattern search (prompt length 1, 2, 4 at the paper's positions)."""
    if not Template.parse(pattern).num_prompt_tokens:
        raise ConfigError(f"pattern {pattern!r} has no prompt token to lengthen")

    def scale(match: re.Match, n: int) -> str:
        count = int(match.group(1) or 1) * n
        return f"[P*{count}]"

    return {f"p{n}": re.sub(r"\[P(?:\*(\d+))?\]", lambda m, n=n: scale(m, n), pattern) for n in lengths}


def strip_final_punctuation(text: str) -> str:
    """PET's `remove_final_punc` (RTE's hypothesis before the "?" anchor)."""
    return text.rstrip(string.punctuation)
