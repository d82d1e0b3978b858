"""Shared fixtures: the real benchmark data beside the project, and tiny random backbones built offline.

Two kinds of tests:

- Unit tests need no benchmark data: templates, batches, the prompted model, training, the prompt encoder, PEFT
  interop, metrics, reports, scorers on hand-made examples, and everything else run on the tiny backbones, whose
  tokenizers are trained on the suite's own text (tests/corpus.txt). Run them alone with
  `pytest -m "not data"`; they pass without ../shared/data.
- Data tests read the benchmark mirror (../shared/data, or $REPRO_SHARED_DATA): LAMA and SuperGLUE files, the
  data fetcher, end-to-end runs on real examples. They are the tests that request the `shared_data` fixture
  (directly or through another fixture), and they get the `data` marker automatically. Run them with
  `pytest -m data`. Without the mirror they fail with an error naming the missing path; they are never skipped.

A plain `pytest` runs both.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REPRO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the benchmark mirror (it requests `shared_data`, maybe through a fixture)."""
    for item in items:
        if {"shared_data", "shared_paper"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session")
def shared_paper() -> Path:
    """The paper's tables as data beside the project (../shared/paper/tables.csv), which the package copies.
    Its absence is an error, never a skip."""
    path = SHARED_DATA.parent / "paper" / "tables.csv"
    if not path.is_file():
        raise RuntimeError(f"the paper's tables not found at {path} (../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark mirror (../shared/data). Its absence is an error, never a skip."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        raise RuntimeError(f"benchmark mirror not found at {SHARED_DATA} (set REPRO_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """Model directories of the five tiny backbones (built once per session from tests/corpus.txt, no data)."""
    texts = tiny.corpus()
    base = tmp_path_factory.mktemp("tiny-backbones")
    return {name: build(base / name, texts) for name, build in tiny.BUILDERS.items()}


@pytest.fixture(scope="session")
def load_tiny(tiny_dirs):
    """`load_tiny("bert")` -> a freshly loaded Backbone (new weights object each call)."""
    from repro.core.backbone import load_backbone

    def load(name: str, **kwargs):
        return load_backbone(str(tiny_dirs[name]), **kwargs)

    return load
