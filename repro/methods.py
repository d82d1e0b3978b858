"""The methods the paper compares, one typed entry each: which parameters train, which pattern family they
read, and the paper's row name per kind of table. The one place a method is added (`register_method`).

LAMA (Table 2): MP (manual prompt, zero-shot), FT (fine-tune the LM on subject -> object), MP+FT (fine-tune
with the manual prompt), P-tuning (frozen LM, one prompt encoder per relation).
SuperGLUE (Tables 3-5): CLS-FT (classification head, LM fine-tuned), MP (PET's pattern, zero-shot), MP-FT
(PET's pattern, LM fine-tuned), P-tuning (encoder and LM trained jointly, as the paper did on SuperGLUE),
P-tuning-frozen (only the encoder trains).

The same name may mean different things per benchmark (LAMA's `ptuning` freezes the LM, SuperGLUE's trains
it), so entries are keyed by (benchmark, name). Nothing here imports torch: the report reads it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Optional

from repro.errors import ConfigError

PAPER_ENCODER = "lstm"  # the paper's prompt encoder (a biLSTM with an MLP head); here, free of torch, for the reports


def recorded_encoder(config: Mapping[str, object]) -> str:
    """The prompt encoder a result file's config records; files older than the field trained the paper's."""
    return str(config.get("encoder") or PAPER_ENCODER)

BENCHMARKS = ("lama", "superglue")


class Style(str, Enum):
    """The pattern family a method reads (a task declares its patterns per family)."""

    MANUAL = "manual"  # the task's manual pattern (LAMA: the relation's prompt; SuperGLUE: PET's pattern)
    PTUNING = "ptuning"  # prompt tokens and anchors
    BARE = "bare"  # the input then the target, no words added (LAMA FT)
    CLASSIFIER = "classifier"  # the plain input for a classification head, no target


@dataclass(frozen=True)
class Method:
    """One method of one benchmark. `paper_names`: table kind (`lama`, `supervised`, `fewshot`) -> the paper's
    row name that this method reproduces there (absent: the paper has no such row)."""

    name: str
    benchmark: str
    label: str  # how tables print it
    style: Style
    uses_encoder: bool
    trains_backbone: bool
    description: str
    paper_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"method {self.name!r}: unknown benchmark {self.benchmark!r}; valid: {', '.join(BENCHMARKS)}")
        if not isinstance(self.style, Style):
            object.__setattr__(self, "style", Style(self.style))

    @property
    def zero_shot(self) -> bool:
        return not self.uses_encoder and not self.trains_backbone

    @property
    def trains(self) -> bool:
        return not self.zero_shot

    @property
    def paper_name(self) -> str:
        """The paper's name where it has one (any table), else the printed label."""
        return next(iter(self.paper_names.values()), self.label)

    def paper_name_in(self, table_kind: str) -> Optional[str]:
        return self.paper_names.get(table_kind)


_METHODS: dict[tuple[str, str], Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add a method (a test or a plug-in may call this); an existing name is refused unless `replace`."""
    key = (method.benchmark, method.name)
    if key in _METHODS and not replace:
        raise ConfigError(f"method {method.name!r} is already registered for {method.benchmark}")
    _METHODS[key] = method
    return method


def unregister_method(benchmark: str, name: str) -> None:
    _METHODS.pop((benchmark, name), None)


def methods_of(benchmark: str) -> dict[str, Method]:
    """The methods of a benchmark, by name, in registration order."""
    return {name: m for (bench, name), m in _METHODS.items() if bench == benchmark}


def method_names(benchmark: str) -> tuple[str, ...]:
    return tuple(methods_of(benchmark))


def get_method(name: str, benchmark: str) -> Method:
    family = methods_of(benchmark)
    if name not in family:
        raise ConfigError(f"unknown {benchmark} method {name!r}; valid: {', '.join(family)}")
    return family[name]


def all_methods() -> tuple[Method, ...]:
    return tuple(_METHODS.values())


# Registration order is the row order of tables (methods_of, method_rank).
for _method in (
    Method("mp", "lama", "MP", Style.MANUAL, False, False, "the relation's manual prompt, zero-shot",
           {"lama": "MP"}),
    Method("ft", "lama", "FT", Style.BARE, False, True,
           "fine-tune the LM to predict the object right after the subject", {"lama": "FT"}),
    Method("mp+ft", "lama", "MP+FT", Style.MANUAL, False, True, "fine-tune the LM with the manual prompt",
           {"lama": "MP+FT"}),
    Method("cls-ft", "superglue", "CLS-FT", Style.CLASSIFIER, False, True,
           "classification head on the LM, LM fine-tuned", {"supervised": "CLS-FT"}),
    # Table 5's PET/iPET rows use unlabeled data and ensembles: no method of ours is the same thing.
    Method("mp", "superglue", "PET-zero-shot", Style.MANUAL, False, False, "PET's manual pattern, zero-shot",
           {"supervised": "PET-zero-shot"}),
    Method("mp-ft", "superglue", "PET-FT", Style.MANUAL, False, True, "PET's manual pattern, LM fine-tuned",
           {"supervised": "PET-FT"}),
    Method("ptuning", "lama", "P-tuning", Style.PTUNING, True, False, "frozen LM, one prompt encoder per relation",
           {"lama": "P-tuning"}),
    Method("ptuning", "superglue", "P-tuning", Style.PTUNING, True, True, "prompt encoder and LM trained jointly",
           {"supervised": "P-tuning", "fewshot": "P-tuning"}),
    Method("ptuning-frozen", "superglue", "P-tuning (frozen LM)", Style.PTUNING, True, False,
           "only the prompt encoder trains"),
):
    register_method(_method)
