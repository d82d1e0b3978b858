"""The main job's printed table: our summaries side by side (parsed and laid out by the report's own code),
the paper's rows of the table that matches the vocabulary beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import DataError
from repro.report.lama_table import format_table, load_summaries
from repro.report.relations import relation_markdown

COMMITTED = Path(__file__).resolve().parents[1] / "results"


def _write(root: Path, method: str, vocab: str, relations: dict, macro: float, micro: float,
           kind: str = "causal") -> None:
    """A summary in the schema the LAMA module writes."""
    out = root / "lama" / "tiny" / f"{method}-{vocab}"
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({
        "schema": "repro.lama.summary/1",
        "config": {"backbone": "tiny", "method": method, "vocab": vocab, "backbone_kind": kind},
        "relations": relations, "macro_p_at_1": macro, "micro_p_at_1": micro,
    }))


def _two_runs(root: Path, vocab: str = "29k", kind: str = "causal") -> None:
    _write(root, "mp", vocab, {"P17": {"p_at_1": 10.0, "kept": 10, "partial": True},
                               "P47": {"p_at_1": 30.0, "kept": 5}}, 20.0, 16.7, kind)
    _write(root, "ptuning", vocab, {"P17": {"p_at_1": 50.0, "kept": 10, "partial": True},
                                    "P47": {"p_at_1": None, "kept": 5, "skipped": "no train facts"}}, 50.0, 50.0, kind)


def test_table_lists_relations_macro_micro_and_the_paper_rows(tmp_path):
    _two_runs(tmp_path)
    lines = format_table(load_summaries(tmp_path, "tiny", ["mp", "ptuning"], "29k")).splitlines()
    assert any(line.split() == ["P17*", "10", "10.0", "50.0"] for line in lines)
    assert any(line.split() == ["P47", "5", "30.0", "—"] for line in lines)
    assert any(line.split() == ["macro", "20.0", "50.0"] for line in lines)
    assert any(line.split() == ["macro,", "same", "1", "10.0", "50.0"] for line in lines)
    assert "The paper, Table 2 right (LAMA-29k), causal LM rows:" in lines
    assert any(line.split() == ["gpt2-medium", "20.3†", "46.5"] for line in lines)
    assert not any(line.startswith("bert-base-cased") for line in lines)


def test_paper_table_follows_the_vocabulary(tmp_path):
    """34k is Table 2 left (no causal LM there: the report's nearest row, BERT-base); full has no paper table."""
    _two_runs(tmp_path / "a", "34k")
    lines = format_table(load_summaries(tmp_path / "a", "tiny", ["mp", "ptuning"], "34k")).splitlines()
    assert "The paper, Table 2 left (LAMA-34k), no causal LM; its bert-base-cased row, the report's nearest row:" \
        in lines
    assert any(line.split() == ["bert-base-cased", "31.1†", "48.3†"] for line in lines)
    _two_runs(tmp_path / "b", "full", kind="masked")
    text = format_table(load_summaries(tmp_path / "b", "tiny", ["mp", "ptuning"], "full"))
    assert text.splitlines()[-1] == "The paper has no table for the full vocabulary: nothing to compare with."
    assert "Table 2" not in text


def test_terminal_and_report_tables_share_one_layout(tmp_path):
    """The same relations, order, partial marks and totals in `lama-table` and the report's markdown."""
    _two_runs(tmp_path)
    table = load_summaries(tmp_path, "tiny", ["mp", "ptuning"], "29k")
    text = [line.split()[0] for line in format_table(table).splitlines()[2:4]]
    markdown = [line.split(" | ")[0].lstrip("| ") for line in relation_markdown(table).splitlines()[6:8]]
    assert text == ["P17*", "P47"] and markdown == ["P17 *", "P47"]


def test_missing_or_malformed_summary_names_the_file(tmp_path):
    with pytest.raises(DataError, match="python -m repro lama --backbone tiny --method ptuning --vocab 29k"):
        load_summaries(tmp_path, "tiny", ["ptuning"], "29k")
    _write(tmp_path, "mp", "29k", {"P17": {"p_at_1": None}}, 1.0, 1.0)
    with pytest.raises(DataError, match=r"mp-29k/summary.json: field 'relations.P17.p_at_1' is missing"):
        load_summaries(tmp_path, "tiny", ["mp"], "29k")


def test_committed_main_job_results_are_consistent():
    """The committed LAMA results: each seed's macro is the mean of its relation files, the summary's macro the
    mean over seeds, and the table shows it."""
    table = load_summaries(COMMITTED, "smollm2-135m", ["mp", "ptuning"], "29k")
    for method, result in table.by_method.items():
        run = COMMITTED / "lama" / "smollm2-135m" / f"{method}-29k"
        macros = []
        for seed in result.seed_metrics or ["34"]:
            folder = run if seed == "34" else run / f"seed{seed}"
            values = [json.loads(p.read_text())["p_at_1"] for p in sorted(folder.glob("P*.json"))]
            values = [v for v in values if v is not None]
            macros.append(sum(values) / len(values))
        assert result.metrics["macro_p_at_1"] == pytest.approx(sum(macros) / len(macros))
    assert f"{table.by_method['ptuning'].metrics['macro_p_at_1']:.1f}" in format_table(table)
