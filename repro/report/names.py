"""Names in one place: our task/method/backbone names, the paper's names for them, and backbone families.

Everything that turns one spelling into another lives here, so that a new alias or a new method is one
edit and the matching code never compares raw strings from two sources. Task and method names are not
listed here: they are read from the declarations (`tasks/`, `repro/methods.py`), so that a task or method
registered at runtime is named like the built-in ones.
"""

from __future__ import annotations

from typing import Optional

from repro.methods import all_methods

SETTINGS = ("fewshot", "supervised")
LAMA_VOCABS = ("29k", "34k", "full")

# LAMA column metric -> key in our summary.json. The paper's P@1 is the mean over relations (macro).
LAMA_METRIC_KEYS: dict[str, str] = {"P@1": "macro_p_at_1", "micro": "micro_p_at_1"}

# How a metric key is printed in a column header.
METRIC_LABELS: dict[str, str] = {
    "acc": "acc",
    "f1_macro": "F1",
    "em": "EM",
    "f1a": "F1a",
    "f1": "F1",
    "mcc": "MCC",
    "gender_parity": "GPS",
    "P@1": "P@1",
    "micro": "P@1 micro",
    "avg": "",
}

# Spellings of the same checkpoint -> one canonical name (the one the paper's table uses where it has one).
BACKBONE_ALIASES: dict[str, str] = {
    "bert-base": "bert-base-cased",
    "bert-large": "bert-large-cased",
    "gpt2-small": "gpt2",
    "gpt2-base": "gpt2",
    "gpt-2": "gpt2",
    "gpt2-345m": "gpt2-medium",
    "gpt2-1.5b": "gpt2-xl",
    "albert-xxlarge": "albert-xxlarge-v2",
    "smollm2": "smollm2-135m",
    "smollm2-135m-instruct": "smollm2-135m",
    "gemma-3-270m": "gemma3-270m",
}

# Masked or causal, for backbones known by name. Others may declare it in their result file.
BACKBONE_FAMILY: dict[str, str] = {
    "bert-base-cased": "masked",
    "bert-large-cased": "masked",
    "e-bert": "masked",
    "roberta-base": "masked",
    "roberta-large": "masked",
    "albert-xxlarge-v2": "masked",
    "gpt2": "causal",
    "gpt2-medium": "causal",
    "gpt2-large": "causal",
    "gpt2-xl": "causal",
    "megatron-11b": "causal",
    "gpt3-175b": "causal",
    "smollm2-135m": "causal",
    "gemma3-270m": "causal",
}


def task_display_name(task: str) -> str:
    """The paper's column name of one of our SuperGLUE tasks (`cb` -> `CB`), from its declaration.

    The registry is imported here, not at module import: `tasks.base` imports `repro.data`, and the report's
    modules must import without loading every adapter."""
    from repro.tasks.registry import get_task

    return get_task(task).display_name


def task_names() -> tuple[str, ...]:
    """Our names of every registered SuperGLUE task, in table order."""
    from repro.tasks.registry import task_names as registered

    return registered()


def _method_order() -> tuple[str, ...]:
    """Our method names in registration order (the row order of tables), each once."""
    return tuple(dict.fromkeys(m.name for m in all_methods()))


def method_to_paper(kind: str) -> dict[str, str]:
    """Our method names -> the paper's row names in tables of this kind, from the method declarations."""
    return {m.name: m.paper_names[kind] for m in all_methods() if kind in m.paper_names}


def canonical_backbone(name: str) -> str:
    """`openai-community/gpt2`, `/models/GPT2/`, `gpt2-small` -> `gpt2`: the last path part, lower case, de-aliased."""
    last = name.strip().rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    return BACKBONE_ALIASES.get(last, last)


def backbone_family(name: str, declared: Optional[str] = None) -> Optional[str]:
    """`masked`, `causal` or None: the name's known family first, else what the result file declared."""
    known = BACKBONE_FAMILY.get(canonical_backbone(name))
    if known is not None:
        return known
    return declared if declared in ("masked", "causal") else None


def paper_method(kind: str, our_method: str) -> Optional[str]:
    """The paper's row name for our method in a table of this kind (`lama`, `supervised`, `fewshot`)."""
    return method_to_paper(kind).get(our_method)


def paper_methods(kind: str) -> frozenset[str]:
    """Paper row names that some method of ours reproduces in tables of this kind."""
    return frozenset(method_to_paper(kind).values())


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def method_rank(our_method: str) -> int:
    order = _method_order()
    return order.index(our_method) if our_method in order else len(order)


def our_method(kind: str, paper_name: str) -> Optional[str]:
    """Inverse of `paper_method`: which method of ours reproduces this paper row, if any."""
    return {v: k for k, v in method_to_paper(kind).items()}.get(paper_name)


def our_metric_key(result_kind: str, metric: str) -> str:
    """The key of a paper metric in our result files (LAMA's P@1 is the macro average over relations)."""
    return LAMA_METRIC_KEYS.get(metric, metric) if result_kind == "lama" else metric


def task_of_display(display: str) -> str:
    """Inverse of `task_display_name`: our name of the task the paper calls `display` (itself if none is)."""
    from repro.tasks.registry import all_tasks

    return next((t.name for t in all_tasks() if t.display_name == display), display)
