"""Reproduction suite for P-tuning ("GPT Understands, Too", Liu et al., 2021)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

# The task adapters live in the checkout's top-level `tasks/` folder (the project card's layout) and import as
# `repro.tasks`: an installed wheel carries them as the subpackage repro/tasks (pyproject.toml `package-dir`), so
# nothing called `tasks` lands in site-packages; in a source checkout this finder maps `repro.tasks` to the folder.
_CHECKOUT_TASKS = Path(__file__).resolve().parent.parent / "tasks"


class _CheckoutTasksFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "repro.tasks" or (Path(__file__).resolve().parent / "tasks").is_dir():
            return None
        return importlib.util.spec_from_file_location(
            fullname, _CHECKOUT_TASKS / "__init__.py", submodule_search_locations=[str(_CHECKOUT_TASKS)])


if (_CHECKOUT_TASKS / "registry.py").is_file() and not any(isinstance(f, _CheckoutTasksFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutTasksFinder())
