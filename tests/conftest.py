"""Shared fixtures: the real benchmark data beside the project, and tiny random backbones built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REPRO_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark mirror (../shared/data). Its absence is an error, never a skip."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        raise RuntimeError(f"benchmark mirror not found at {SHARED_DATA} (set REPRO_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, shared_data) -> dict[str, Path]:
    """Model directories of the five tiny backbones (built once per session)."""
    texts = tiny.corpus(shared_data)
    base = tmp_path_factory.mktemp("tiny-backbones")
    return {name: build(base / name, texts) for name, build in tiny.BUILDERS.items()}


@pytest.fixture(scope="session")
def load_tiny(tiny_dirs):
    """`load_tiny("bert")` -> a freshly loaded Backbone (new weights object each call)."""
    from repro.core.backbone import load_backbone

    def load(name: str, **kwargs):
        return load_backbone(str(tiny_dirs[name]), **kwargs)

    return load
