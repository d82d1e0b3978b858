"""The main job's printed table: our summaries side by side, the paper's GPT rows beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import DataError
from repro.report.lama_table import format_table, load_summaries

COMMITTED = Path(__file__).resolve().parents[1] / "results"


def _summary(method: str, relations: dict) -> dict:
    return {"relations": relations, "macro_p_at_1": 0.0, "micro_p_at_1": 0.0, "config": {"method": method}}


def test_table_lists_relations_macro_micro_and_the_paper_rows(tmp_path):
    for method, rels, macro, micro in (
        ("mp", {"P17": {"p_at_1": 10.0, "kept": 10, "partial": True}, "P47": {"p_at_1": 30.0, "kept": 5}}, 20.0, 16.7),
        ("ptuning", {"P17": {"p_at_1": 50.0, "kept": 10, "partial": True}, "P47": {"p_at_1": None, "kept": 5}}, 50.0, 50.0),
    ):
        out = tmp_path / "lama" / "tiny" / f"{method}-29k"
        out.mkdir(parents=True)
        (out / "summary.json").write_text(json.dumps({**_summary(method, rels), "macro_p_at_1": macro, "micro_p_at_1": micro}))
    text = format_table(load_summaries(tmp_path, "tiny", ["mp", "ptuning"], "29k"), "tiny", "29k")
    lines = text.splitlines()
    assert any(line.split() == ["P17*", "10", "10.0", "50.0"] for line in lines)
    assert any(line.split() == ["P47", "5", "30.0", "—"] for line in lines)
    assert any(line.split() == ["macro", "20.0", "50.0"] for line in lines)
    assert any(line.split() == ["macro,", "same", "1", "10.0", "50.0"] for line in lines)
    assert any(line.split() == ["gpt2-medium", "20.3†", "46.5"] for line in lines)


def test_missing_summary_names_the_command_to_run(tmp_path):
    with pytest.raises(DataError, match="python -m repro lama --backbone tiny --method ptuning --vocab 29k"):
        load_summaries(tmp_path, "tiny", ["ptuning"], "29k")


def test_committed_main_job_results_are_consistent():
    """The committed LAMA results: macro is the mean of the per-relation files, the table shows it."""
    summaries = load_summaries(COMMITTED, "smollm2-135m", ["mp", "ptuning"], "29k")
    for method, summary in summaries.items():
        folder = COMMITTED / "lama" / "smollm2-135m" / f"{method}-29k"
        values = [json.loads(p.read_text())["p_at_1"] for p in sorted(folder.glob("P*.json"))]
        values = [v for v in values if v is not None]
        assert summary["macro_p_at_1"] == pytest.approx(sum(values) / len(values))
    assert f"{summaries['ptuning']['macro_p_at_1']:.1f}" in format_table(summaries, "smollm2-135m", "29k")
