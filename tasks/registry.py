"""Task names -> adapter classes. The one place a task is added: a line in TASKS ("module:Class"), or, from a
test or a plug-in, `register_task(MyTask)`. Everything else (data fetching, presets, the report's columns and
Avg, the quick tables) reads the task declarations through this registry.

Order matters: it is the column order of the SuperGLUE tables (the paper's Table 5 order, then the tasks the
paper's tables leave out). Modules are imported on first use, so naming one task does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Union

from repro.errors import ConfigError
from repro.tasks.base import Task

TASKS: dict[str, Union[str, type[Task]]] = {
    "boolq": "repro.tasks.boolq:BoolQ",
    "cb": "repro.tasks.cb:Cb",
    "wic": "repro.tasks.wic:Wic",
    "rte": "repro.tasks.rte:Rte",
    "multirc": "repro.tasks.multirc:MultiRc",
    "wsc": "repro.tasks.wsc:Wsc",
    "copa": "repro.tasks.copa:Copa",
    "record": "repro.tasks.record:Record",
    "axb": "repro.tasks.axb:AxB",
    "axg": "repro.tasks.axg:AxG",
}


def register_task(cls: type[Task], *, replace: bool = False) -> type[Task]:
    """Add a task class (usable as a decorator); an existing name is refused unless `replace`."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__}: a task needs a `name`")
    if cls.name in TASKS and not replace:
        raise ConfigError(f"task {cls.name!r} is already registered")
    TASKS[cls.name] = cls
    return cls


def unregister_task(name: str) -> None:
    TASKS.pop(name, None)


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def get_task(name: str) -> Task:
    """A fresh adapter for `name`; unknown names list the valid ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    entry = TASKS[name]
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), class_name)
    return entry()


def all_tasks() -> list[Task]:
    """One adapter per registered task, in table order."""
    return [get_task(name) for name in TASKS]


def diagnostics() -> tuple[str, ...]:
    """Tasks evaluated with another task's model (AX-b, AX-g): never run on their own in scripts."""
    return tuple(t.name for t in all_tasks() if t.is_diagnostic)


def trainable_task_names() -> tuple[str, ...]:
    return tuple(t.name for t in all_tasks() if not t.is_diagnostic)
