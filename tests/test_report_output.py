"""Reporting, part 2: malformed result files, plots, REPRODUCING.md sections, the `report` subcommand."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from repro.errors import ConfigError, DataError
from repro.report import cli
from repro.report.build import ReportOptions, build_report, views_by_key
from repro.report.reproducing import find_sections, update_sections, write_sections
from repro.report.results import discover_results
from test_report import lama, small_result_set, superglue, write_json

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- malformed result files ---------------------------------------------------------------------------------

def test_malformed_files_are_named_with_a_reason_and_the_rest_is_read(tmp_path):
    root = tmp_path / "results"
    superglue(root, "fewshot", "smollm2-135m", "ptuning", "cb", {"acc": 70.0, "f1_macro": 60.0})
    (root / "superglue/fewshot/smollm2-135m/ptuning/rte.json").write_text('{"schema": "repro.superglue/1",\n  oops}')
    write_json(root, "superglue/fewshot/smollm2-135m/ptuning/wic.json",
               {"schema": "repro.superglue/1", "config": {"task": "wic", "setting": "fewshot", "method": "ptuning"},
                "mean": {"acc": 50.0}})
    write_json(root, "superglue/fewshot/smollm2-135m/ptuning/boolq.json",
               {"schema": "repro.superglue/1", "config": {"task": "boolq", "setting": "fewshot",
                "backbone": "smollm2-135m", "method": "ptuning"}, "mean": {"acc": "high"}})
    write_json(root, "superglue/fewshot/smollm2-135m/ptuning/copa.json", {"accuracy": 50.0})
    write_json(root, "lama/smollm2-135m/ptuning-29k/summary.json",
               {"schema": "repro.lama.summary/1", "config": {"backbone": "smollm2-135m", "method": "ptuning",
                "vocab": "40k"}, "macro_p_at_1": 20.0})
    write_json(root, "lama/smollm2-135m/ptuning-29k/P17.json", {"schema": "repro.lama.relation/1", "p_at_1": 1})
    write_json(root, "checkpoints/encoder/config.json", {"hidden_size": 8})
    found = discover_results(root)
    assert [r.display for r in found.results] == ["results/superglue/fewshot/smollm2-135m/ptuning/cb.json"]
    assert [str(p) for p in found.problems] == [
        "results/lama/smollm2-135m/ptuning-29k/summary.json: field 'config.vocab': '40k' is not one of 29k, 34k, full",
        "results/superglue/fewshot/smollm2-135m/ptuning/boolq.json: field 'mean.acc' is not a finite number: 'high'",
        "results/superglue/fewshot/smollm2-135m/ptuning/copa.json: no 'schema' field; expected "
        "'repro.lama.summary/1' or 'repro.superglue/1'",
        "results/superglue/fewshot/smollm2-135m/ptuning/rte.json: invalid JSON at line 2 column 3: "
        "Expecting property name enclosed in double quotes",
        "results/superglue/fewshot/smollm2-135m/ptuning/wic.json: field 'config.backbone' is missing",
    ]
    assert found.ignored == ["results/checkpoints/encoder/config.json",
                             "results/lama/smollm2-135m/ptuning-29k/P17.json"]


def test_cli_warns_about_a_malformed_file_and_still_writes_the_report(tmp_path, capsys):
    root = small_result_set(tmp_path / "results")
    bad = root / "superglue/supervised/gpt2-small/ptuning/wsc.json"
    bad.write_text(bad.read_text(encoding="utf-8")[:40])
    code = _run_cli(["--results", str(root), "--reproducing", str(tmp_path / "R.md"), "--no-plots"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "warning: skipped results/superglue/supervised/gpt2-small/ptuning/wsc.json: invalid JSON" in err
    assert "Results read: 10 file(s); skipped as malformed: 1." in out
    assert "  on the paper's own backbone: 8 within ±1 points, 0 differ, 158 missing (no result of ours)" in out
    t3 = (root / "tables/table3.md").read_text(encoding="utf-8")
    assert "| P-tuning | gpt2 | same backbone [c] |" in t3 and "incomplete 6/7 / 70.4†" in t3
    reproducing = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert "- results/superglue/supervised/gpt2-small/ptuning/wsc.json: invalid JSON" in reproducing


# ---- plots --------------------------------------------------------------------------------------------------

def test_plots_are_valid_pngs(tmp_path):
    root = small_result_set(tmp_path / "results")
    report = build_report(ReportOptions(results=root, reproducing=None, plots=True))
    names = sorted(p.name for p in report.plots)
    assert names == ["claims.png", "delta.png", "lama_relations_smollm2-135m_29k.png", "table3_gpt2.png",
                     "table3_smollm2-135m.png", "table5_smollm2-135m.png"]
    for path in report.plots:
        data = path.read_bytes()
        assert path.parent == root / "plots"
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 10_000, path
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 400 and height > 250, (path, width, height)
    assert not list((root / "plots").glob(".*")), "no temporary files left behind"


# ---- REPRODUCING.md -----------------------------------------------------------------------------------------

PROSE = """# Reproducing

Hand-written intro: keep me.

<!-- report:begin summary -->
old numbers
<!-- report:end summary -->

## Gaps
Written by a person, between two generated sections.

<!-- report:begin custom -->
a section the report does not generate
<!-- report:end custom -->
Trailing prose.
"""


def test_sections_are_replaced_and_prose_left_alone():
    updated = update_sections(PROSE, {"summary": "new numbers\nline 2", "runs": "the runs"})
    assert updated == PROSE.replace("old numbers", "new numbers\nline 2") + (
        "\n<!-- report:begin runs -->\nthe runs\n<!-- report:end runs -->\n")
    assert update_sections(updated, {"summary": "new numbers\nline 2", "runs": "the runs"}) == updated


def test_missing_file_is_created_with_the_sections(tmp_path):
    path = tmp_path / "docs" / "REPRODUCING.md"
    path.parent.mkdir()
    write_sections(path, {"summary": "s"})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n<!-- report:begin summary -->\ns\n<!-- report:end summary -->\n")
    assert set(find_sections(text)) == {"summary"}


@pytest.mark.parametrize("text, message", [
    ("a\n<!-- report:begin x -->\nb\n", "R.md:2: section 'x' has no end marker"),
    ("<!-- report:end x -->\n", "R.md:1: end of section 'x' without its begin marker"),
    ("<!-- report:begin x -->\n<!-- report:begin y -->\n", "R.md:2: section 'y' begins inside section 'x'"),
    ("<!-- report:begin x -->\n<!-- report:end x -->\n<!-- report:begin x -->\n", "R.md:3: section 'x' appears twice"),
])
def test_broken_markers_are_an_error_with_the_line(tmp_path, text, message):
    path = tmp_path / "R.md"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        write_sections(path, {"x": "new"})
    assert path.read_text() == text


def test_report_regenerates_reproducing_sections(tmp_path):
    root = small_result_set(tmp_path / "results")
    path = tmp_path / "REPRODUCING.md"
    path.write_text(PROSE, encoding="utf-8")
    build_report(ReportOptions(results=root, reproducing=path, plots=True, command="python -m repro report"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Reproducing\n\nHand-written intro: keep me.\n\n<!-- report:begin summary -->\n")
    assert "## Gaps\nWritten by a person, between two generated sections.\n" in text
    assert "a section the report does not generate\n<!-- report:end custom -->\nTrailing prose.\n" in text
    assert set(find_sections(text)) == {"summary", "custom", "tables", "runs", "facts", "spread", "schedules", "claims"}
    assert "old numbers" not in text
    assert "_Generated by `python -m repro report`;" in text
    assert "### Table 2 (right): LAMA-29k P@1" in text and "### Table 4" not in text
    assert "No results of ours yet for: Table 1, Table 2 left, Table 4" in text
    assert "![Ours minus the paper for every compared cell](results/plots/delta.png)" in text
    assert "[table3](results/tables/table3.md)" in text
    assert ("| results/lama/smollm2-135m/mp-29k/summary.json | cpu | suite (recorded before the switch) | "
            "`python -m repro lama --backbone smollm2-135m "
            "--method mp --vocab 29k` | 0123456789 | device=cpu, dtype=float32, torch_threads=2, torch=2.13.0, "
            "transformers=4.57.0, python=3.11.7, … (+2) | 60 s |") in text


def test_runs_section_names_an_encoder_other_than_the_papers(tmp_path):
    """An `--encoder mlp | none` run files under the same method as the paper's LSTM: the runs list says which."""
    root = tmp_path / "results"
    lama(root, "smollm2-135m", "ptuning", "29k", 20.0, encoder="lstm")
    lama(root, "gpt2", "ptuning", "29k", 10.0, encoder="none")
    lama(root, "bert-base", "ptuning", "29k", 12.0, encoder="mlp")
    lama(root, "smollm2-135m", "mp", "29k", 12.5)  # no encoder recorded
    path = tmp_path / "REPRODUCING.md"
    build_report(ReportOptions(results=root, reproducing=path, plots=False, command="python -m repro report"))
    lines = path.read_text(encoding="utf-8").splitlines()
    begin, end = find_sections("\n".join(lines))["runs"]
    rows = {line.split(" | ")[0].split("/lama/")[1]: line.split(" | ")[1] for line in lines[begin + 3:end]}
    assert rows == {"smollm2-135m/ptuning-29k/summary.json": "cpu", "gpt2/ptuning-29k/summary.json": "cpu, encoder none",
                    "bert-base/ptuning-29k/summary.json": "cpu, encoder mlp", "smollm2-135m/mp-29k/summary.json": "cpu"}


# ---- the subcommand -----------------------------------------------------------------------------------------

def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    assert args.func is cli.run
    return args.func(args)


def test_cli_defaults_and_summary(tmp_path, capsys, monkeypatch):
    root = small_result_set(tmp_path / "results")
    lama(root, "bert-base", "ptuning", "34k", 48.0)
    monkeypatch.chdir(tmp_path)  # explicit relative paths are taken relative to the working directory
    assert _run_cli(["--results", "results", "--reproducing", "REPRODUCING.md", "--no-plots", "--tolerance", "0.2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "Results read: 12 file(s); skipped as malformed: 0.",
        "Paper cells a method of ours reproduces (task cells, Tables 2-5): 166",
        "  on the paper's own backbone: 9 within ±0.2 points, 1 differ, 156 missing (no result of ours)",
        "Compared with a nearest paper row (backbones the paper did not use): 4 cell(s), 0 within ±0.2, 4 differ",
    ]
    assert "  Table 2 right | P-tuning | smollm2-135m -> paper row P-tuning | gpt2-medium " \
           "(nearest causal backbone of Table 2 right)" in out
    assert out[out.index("Largest gaps (ours - paper, points):") + 1] == (
        "   -32.2  Table 5 | P-tuning | smollm2-135m vs albert-xxlarge-v2 | CB F1: ours 60.1, paper 92.3 [ours partial]")
    assert out[-1] == "Wrote 15 table file(s) to results/tables, report sections of REPRODUCING.md"
    assert (tmp_path / "results/tables/table2_left.md").is_file() and not (tmp_path / "results/plots").exists()
    assert "python -m repro report --results results --tolerance 0.2 --reproducing REPRODUCING.md --no-plots" in (
        tmp_path / "REPRODUCING.md").read_text(encoding="utf-8")


def test_cli_defaults_are_the_projects_results_and_reproducing_wherever_it_runs(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    small_result_set(project / "results")
    monkeypatch.setattr(cli, "PROJECT_ROOT", project)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert _run_cli(["--no-plots"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Wrote 15 table file(s) to {project / 'results/tables'}, report sections of {project / 'REPRODUCING.md'}")
    assert (project / "results/tables/table5.md").is_file() and not list((tmp_path / "elsewhere").iterdir())
    # the stamp spells the defaults as typed from the project root: the committed text is the same everywhere
    assert "python -m repro report --results results --tolerance 1 --reproducing REPRODUCING.md --no-plots" in (
        project / "REPRODUCING.md").read_text(encoding="utf-8")


def test_cli_out_dir_and_user_errors(tmp_path):
    root = small_result_set(tmp_path / "results")
    assert _run_cli(["--results", str(root), "--out", str(tmp_path / "out"), "--no-plots", "--no-reproducing"]) == 0
    assert (tmp_path / "out/tables/table5.csv").is_file() and not (root / "tables").exists()
    assert not (tmp_path / "REPRODUCING.md").exists()
    with pytest.raises(ConfigError, match="results directory .*nowhere.* not found"):
        _run_cli(["--results", str(tmp_path / "nowhere")])
    with pytest.raises(ConfigError, match="--tolerance must be >= 0"):
        _run_cli(["--results", str(root), "--tolerance", "-1"])


def test_duplicate_results_for_one_cell_are_reported(tmp_path):
    root = tmp_path / "results"
    superglue(root, "fewshot", "smollm2-135m", "ptuning", "cb", {"acc": 70.0, "f1_macro": 60.0})
    path = write_json(root, "superglue/copy/cb.json",
                      json.loads((root / "superglue/fewshot/smollm2-135m/ptuning/cb.json").read_text()))
    report = build_report(ReportOptions(results=root, reproducing=None, plots=False))
    assert path.is_file()
    assert report.matching.warnings[0] == (
        "two results for Table 5 | P-tuning | smollm2-135m | CB acc: results/superglue/copy/cb.json and "
        "results/superglue/fewshot/smollm2-135m/ptuning/cb.json; using the first")
    assert "warning: two results for Table 5" in "\n".join(report.lines)
    assert len(views_by_key(report)["table5"].results) == 2


def test_outputs_no_result_backs_any_more_are_removed_and_others_kept(tmp_path):
    root = small_result_set(tmp_path / "results")
    build_report(ReportOptions(results=root, reproducing=None, plots=True))
    (root / "tables/notes.md").write_text("a person's file")
    for path in (root / "superglue/supervised/gpt2-small").rglob("*.json"):
        path.unlink()
    report = build_report(ReportOptions(results=root, reproducing=None, plots=True))
    assert [p.name for p in report.removed] == ["table3_gpt2.png"]
    assert not (root / "plots/table3_gpt2.png").exists() and (root / "plots/table3_smollm2-135m.png").is_file()
    assert (root / "tables/notes.md").read_text() == "a person's file"


def test_committed_tables_and_reproducing_sections_are_what_the_committed_results_give(tmp_path, monkeypatch):
    """REPRODUCING.md and results/tables must not drift from the result files: regenerating them from the
    committed results changes nothing (rerun `python -m repro report` after adding a result)."""
    project = Path(__file__).resolve().parents[1]
    shutil.copytree(project / "results", tmp_path / "results")
    shutil.copy(project / "REPRODUCING.md", tmp_path / "REPRODUCING.md")
    monkeypatch.chdir(tmp_path)  # result files are named relative to where the report runs, as with the CLI
    command = "python -m repro report --results results --tolerance 1 --reproducing REPRODUCING.md"
    report = build_report(ReportOptions(results=Path("results"), reproducing=Path("REPRODUCING.md"),
                                        plots=True, command=command))
    assert not report.results.problems and not report.removed
    for table in (project / "results/tables").iterdir():
        assert (tmp_path / "results/tables" / table.name).read_text() == table.read_text(), table.name
    assert (tmp_path / "REPRODUCING.md").read_text() == (project / "REPRODUCING.md").read_text()


# ---- a task registered at runtime ---------------------------------------------------------------------------

COMMITTED_RESULT = Path(__file__).resolve().parents[1] / "results/superglue/fewshot/smollm2-135m/ptuning/wic.json"


@pytest.fixture
def toy_task():
    """A task declared only at runtime: outside the paper's tables and the Avg, one metric."""
    from repro.tasks.base import Task
    from repro.tasks.registry import register_task, unregister_task

    class Toy(Task):
        name, folder, paper_name = "toy", "Toy", "Toy"
        metrics, in_paper_tables, in_avg = ("acc",), False, False

    register_task(Toy)
    yield Toy
    unregister_task("toy")


def _toy_result(root: Path, setting: str, backbone: str, method: str, acc: float) -> Path:
    """A toy result in the shape of a committed SuperGLUE result (its task, setting, backbone, numbers changed)."""
    data = json.loads(COMMITTED_RESULT.read_text(encoding="utf-8"))
    data["config"].update(task="toy", setting=setting, backbone=backbone, method=method)
    data["backbone_name"] = backbone
    data["seeds"] = {seed: {"acc": acc} for seed in data["seeds"]}
    data["mean"], data["std"] = {"acc": acc}, {"acc": 0.0}
    return write_json(root, f"superglue/{setting}/{backbone}/{method}/toy.json", data)


def test_a_task_registered_at_runtime_is_an_extra_column_of_every_superglue_view(tmp_path, toy_task, capsys):
    from repro.report.superglue_table import format_table, load_results

    root = small_result_set(tmp_path / "results")
    _toy_result(root, "fewshot", "smollm2-135m", "ptuning", 61.5)
    _toy_result(root, "supervised", "smollm2-135m", "ptuning", 70.25)
    _toy_result(root, "supervised", "gpt2-medium", "ptuning", 80.0)
    assert _run_cli(["--results", str(root), "--no-reproducing", "--no-plots"]) == 0
    assert "warning" not in capsys.readouterr().err
    for table, row, cell in (("table5", "| P-tuning | smollm2-135m |", "61.5±0.0 / —"),
                             ("table3", "| P-tuning | smollm2-135m |", "70.2±0.0 / —"),
                             ("table4", "| P-tuning | gpt2-medium |", "80.0±0.0 / —")):
        lines = (root / f"tables/{table}.md").read_text(encoding="utf-8").splitlines()
        assert lines[4].endswith("| Avg | Toy acc |") or "| Avg | ReCoRD EM | ReCoRD F1 | Toy acc |" in lines[4], table
        ours = next(line for line in lines if line.startswith(row))
        assert ours.endswith(f"| {cell} |"), (table, ours)
    table5 = (root / "tables/table5.csv").read_text(encoding="utf-8")
    assert ",Toy,acc,61.5,0.0,3,,,,,False,,," in table5  # no paper cell, not in the Avg
    quick = format_table(load_results(root, "supervised", "smollm2-135m", ["ptuning"])).splitlines()
    assert quick[0] == "| Method | Avg | ReCoRD EM | ReCoRD F1 | Toy acc |"
    assert quick[2] == "| P-tuning (ptuning) | - | 20.0 | 21.0 | 70.2 ± 0.0 |"


def test_a_result_of_an_unregistered_task_is_named_as_malformed(tmp_path):
    root = tmp_path / "results"
    _toy_result(root, "fewshot", "smollm2-135m", "ptuning", 61.5)
    found = discover_results(root)
    assert not found.results and str(found.problems[0]).startswith(
        "results/superglue/fewshot/smollm2-135m/ptuning/toy.json: field 'config.task': 'toy' is not a registered task")


def test_quick_superglue_table_is_the_reports_columns_and_avg(tmp_path):
    from repro.report.superglue_table import format_table, load_results

    root = small_result_set(tmp_path / "results")
    lines = format_table(load_results(root, "supervised", "gpt2-small", ["ptuning"])).splitlines()
    assert lines[0] == ("| Method | BoolQ acc | CB acc | CB F1 | WiC acc | RTE acc | MultiRC EM | MultiRC F1a | "
                        "WSC acc | COPA acc | Avg |")
    assert lines[2] == ("| P-tuning (ptuning) | 75.0 ± 0.0 | 91.1 ± 0.0 | 93.2 ± 0.0 | 68.3 ± 0.0 | 70.8 ± 0.0 | "
                        "23.5 ± 0.0 | 69.8 ± 0.0 | 63.5 ± 0.0 | 76.0 ± 0.0 | 70.3 |")
    partial = format_table(load_results(root, "supervised", "gpt2-small", ["ptuning"]), ["cb", "rte"]).splitlines()
    assert partial[2] == "| P-tuning (ptuning) | 91.1 ± 0.0 | 93.2 ± 0.0 | 70.8 ± 0.0 | 81.5* |"
    assert partial[-1] == "P-tuning (ptuning): Avg over cb, rte (missing boolq, wic, multirc, wsc, copa)"


# ---- provenance ---------------------------------------------------------------------------------------------

def test_git_commit_is_dirty_for_code_changes_only(tmp_path, monkeypatch):
    """Writing results (tracked, under results/) or untracked files does not mark the next run dirty."""
    import subprocess

    import repro.results as provenance

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results/r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    (tmp_path / "results/r.json").write_text('{"new": 1}')
    (tmp_path / "untracked.py").write_text("")
    assert not provenance.git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("-dirty")


def test_report_and_quick_tables_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; from repro.cli import build_parser\n"
            "for name in ('report', 'lama-table', 'superglue-table'): build_parser(name)\n"
            "import repro.report.build; from repro.tasks.registry import all_tasks; all_tasks()\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
