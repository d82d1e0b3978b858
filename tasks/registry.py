"""Task names -> adapter classes. The one place a task is added: a line in TASKS ("module:Class").
Modules are imported on first use, so naming one task does not import the others."""

from __future__ import annotations

import importlib

from repro.errors import ConfigError
from tasks.base import Task

TASKS: dict[str, str] = {
    "boolq": "tasks.boolq:BoolQ",
    "cb": "tasks.cb:Cb",
    "copa": "tasks.copa:Copa",
    "multirc": "tasks.multirc:MultiRc",
    "record": "tasks.record:Record",
    "rte": "tasks.rte:Rte",
    "wic": "tasks.wic:Wic",
    "wsc": "tasks.wsc:Wsc",
    "axb": "tasks.axb:AxB",
    "axg": "tasks.axg:AxG",
}
DIAGNOSTICS = ("axb", "axg")


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def get_task(name: str) -> Task:
    """A fresh adapter for `name`; unknown names list the valid ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    module_name, class_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
