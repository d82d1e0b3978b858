"""Reporting, part 1: the paper table, names and aliases, matching, the Avg rule, markdown and CSV output.

Results are synthetic JSON files in tmp_path, written in the schemas the LAMA and SuperGLUE modules use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pytest

from repro.errors import DataError
from repro.report.average import superglue_average
from repro.report.build import ReportOptions, build_report, views_by_key
from repro.report.match import build_views, compared_row, route
from repro.report.names import backbone_family, canonical_backbone
from repro.report.paper import KNOWN_TABLES, load_paper_tables, shipped_path
from repro.report.results import discover_results
from repro.report.summary import summarize



# ---- synthetic result files -------------------------------------------------------------------------------

def write_json(root: Path, rel: str, data: Any) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


ENVIRONMENT = {"python": "3.11.7", "platform": "Linux-x86_64", "cpu_count": 2, "torch_threads": 2, "device": "cpu",
               "dtype": "float32", "packages": {"torch": "2.13.0", "transformers": "4.57.0", "peft": None}}


def lama(root: Path, backbone: str, method: str, vocab: str, macro: float, micro: Optional[float] = None,
         relations: Optional[dict] = None, partial: bool = False, **config: Any) -> Path:
    return write_json(root, f"lama/{backbone}/{method}-{vocab}/summary.json", {
        "schema": "repro.lama.summary/1",
        "config": {"task": "lama", "backbone": backbone, "method": method, "vocab": vocab, "preset": "cpu",
                   "seed": 34, **config},
        "macro_p_at_1": macro, "micro_p_at_1": micro, "relations": relations or {}, "partial": partial,
        "notes": [], "environment": ENVIRONMENT,
        "command": f"python -m repro lama --backbone {backbone} --method {method} --vocab {vocab}",
        "git_commit": "0123456789abcdef", "wall_time_s": 60.0,
    })


def superglue(root: Path, setting: str, backbone: str, method: str, task: str, mean: dict[str, float],
              std: Optional[dict[str, float]] = None, seeds: int = 3, partial: bool = False,
              notes: tuple[str, ...] = (), **config: Any) -> Path:
    seed_ids = [str(42 + i) for i in range(seeds)]
    return write_json(root, f"superglue/{setting}/{backbone}/{method}/{task}.json", {
        "schema": "repro.superglue/1",
        "config": {"task": task, "setting": setting, "backbone": backbone, "method": method, "preset": "cpu",
                   "seeds": [int(s) for s in seed_ids], **config},
        "seeds": {s: mean for s in seed_ids}, "mean": mean, "std": std or {k: 0.0 for k in mean},
        "eval_split": "val", "n_eval": 56, "partial": partial, "notes": list(notes),
        "environment": {"torch": "2.13.0"}, "command": f"python -m repro superglue --task {task}",
        "git_commit": "fedcba9876543210", "wall_time_s": 5.0,
    })


SMOL_RELATIONS_MP = {
    "P17": {"p_at_1": 20.0, "kept": 900, "dropped": 12, "partial": True, "partial_reason": "test file rebuilt"},
    "P101": {"p_at_1": 5.0, "kept": 500, "dropped": 3, "partial": False},
    "P190": {"p_at_1": None, "kept": 40, "dropped": 1, "partial": True, "partial_reason": "test file rebuilt",
             "skipped": "no train facts"},
}
SMOL_RELATIONS_PT = {
    "P17": {"p_at_1": 45.0, "kept": 900, "dropped": 12, "partial": True, "partial_reason": "test file rebuilt"},
    "P101": {"p_at_1": 10.25, "kept": 500, "dropped": 3, "partial": False},
    "P190": {"p_at_1": None, "kept": 40, "dropped": 1, "partial": True, "partial_reason": "test file rebuilt",
             "skipped": "no train facts"},
}
GPT2_FULL = {"boolq": {"acc": 75.0}, "cb": {"acc": 91.1, "f1_macro": 93.2}, "wic": {"acc": 68.3},
             "rte": {"acc": 70.8}, "multirc": {"em": 23.5, "f1a": 69.8}, "wsc": {"acc": 63.5}, "copa": {"acc": 76.0}}


def small_result_set(root: Path) -> Path:
    """LAMA-29k MP and P-tuning on smollm2 (one relation partial), one full supervised GPT-2 row (alias),
    a partial few-shot CB run, a ReCoRD run (no paper cell)."""
    lama(root, "smollm2-135m", "mp", "29k", 12.5, 14.0, SMOL_RELATIONS_MP, partial=True)
    lama(root, "smollm2-135m", "ptuning", "29k", 27.625, 30.1, SMOL_RELATIONS_PT, partial=True)
    for task, mean in GPT2_FULL.items():
        superglue(root, "supervised", "gpt2-small", "ptuning", task, mean)
    superglue(root, "fewshot", "smollm2-135m", "ptuning", "cb", {"acc": 70.0, "f1_macro": 60.06},
              {"acc": 1.25, "f1_macro": 2.0}, partial=True, notes=("evaluated on 20 of 56 examples",))
    superglue(root, "supervised", "smollm2-135m", "ptuning", "record", {"em": 20.0, "f1": 21.0}, seeds=1)
    return root


def load_results(root: Path):
    found = discover_results(root)
    assert not found.problems, found.problems
    return found.results


# ---- the paper table ----------------------------------------------------------------------------------------

def test_shipped_paper_table_loads_and_is_the_shared_copy(shared_paper):
    paper = load_paper_tables()
    assert shipped_path().read_bytes() == shared_paper.read_bytes()
    assert {c.table for c in paper.cells} == set(KNOWN_TABLES)
    assert {c.status for c in paper.cells} == {"corroborated", "transcribed"}
    cell = paper.get("Table 3", "P-tuning", "bert-base-cased", "CB", "f1_macro")
    assert (cell.value, cell.status, cell.line) == (92.1, "corroborated", 76)
    oom = paper.get("Table 2 right", "FT", "megatron-11b", "LAMA", "P@1")
    assert oom.value is None and oom.note == "OOM in the paper"
    assert paper.rows("Table 5")[-1] == ("P-tuning", "albert-xxlarge-v2")


def _edited_copy(tmp_path: Path, line: int, old: str, new: str) -> Path:
    lines = shipped_path().read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path = tmp_path / "tables.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("line, old, new, message", [
    (11, ",43.3,", ",4x.3,", ":11: field 'value': '4x.3' is not a number"),
    (11, ",43.3,", ",143.3,", ":11: field 'value': '143.3' is not a percentage in [-100, 100]"),
    (12, "Table 2 left", "Table 9", ":12: field 'table': unknown table 'Table 9'"),
    (11, ",corroborated,", ",checked,", ":11: field 'status': 'checked' is not one of corroborated, transcribed"),
    (39, ",,transcribed,OOM in the paper", ",,transcribed,", ":39: field 'value' is empty and 'note' does not say why"),
    (1, ",status,", ",state,", ":1: missing column(s) status"),
])
def test_bad_paper_table_is_named_by_file_line_and_field(tmp_path, line, old, new, message):
    path = _edited_copy(tmp_path, line, old, new)
    with pytest.raises(DataError) as err:
        load_paper_tables(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_duplicate_paper_cell_names_both_lines(tmp_path):
    text = shipped_path().read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "tables.csv"
    path.write_text("".join(text + [text[5]]), encoding="utf-8")
    with pytest.raises(DataError, match=rf"tables.csv:{len(text) + 1}: duplicate cell .* \(first at line 6\)"):
        load_paper_tables(path)


# ---- names, routing and the nearest-row rule -------------------------------------------------------------------

@pytest.mark.parametrize("name, canonical", [
    ("bert-base", "bert-base-cased"), ("bert-base-cased", "bert-base-cased"), ("gpt2-small", "gpt2"),
    ("openai-community/gpt2", "gpt2"), ("/models/GPT2-Medium/", "gpt2-medium"), ("albert-xxlarge", "albert-xxlarge-v2"),
    ("bert-base-uncased", "bert-base-uncased"), ("SmolLM2-135M-Instruct", "smollm2-135m"),
])
def test_backbone_aliases_resolve_to_the_papers_names(name, canonical):
    assert canonical_backbone(name) == canonical


def test_backbone_family_from_name_else_from_result():
    assert backbone_family("gpt2-small") == "causal" and backbone_family("bert-large") == "masked"
    assert backbone_family("my-local-model") is None
    assert backbone_family("my-local-model", "masked") == "masked"
    assert backbone_family("gpt2", "masked") == "causal"


def test_aliased_results_match_the_papers_own_rows(tmp_path):
    lama(tmp_path, "bert-base", "ptuning", "34k", 48.0)
    superglue(tmp_path, "supervised", "gpt2-small", "ptuning", "rte", {"acc": 70.0})
    superglue(tmp_path, "supervised", "openai-community/gpt2-medium", "mp-ft", "rte", {"acc": 72.0})
    paper = load_paper_tables()
    found = {(r.kind, r.backbone): r for r in load_results(tmp_path)}
    expected = {
        ("lama", "bert-base-cased"): ("table2_left", "P-tuning", "bert-base-cased"),
        ("superglue", "gpt2"): ("table3", "P-tuning", "gpt2"),
        ("superglue", "gpt2-medium"): ("table4", "PET-FT", "gpt2-medium"),
    }
    for key, (table, method, paper_backbone) in expected.items():
        result = found[key]
        spec = route(result, paper)
        row = compared_row(spec, paper, result)
        assert (spec.key, row.paper_method, row.paper_backbone, row.rule) == (
            table, method, paper_backbone, "same backbone as the paper")
    views = {v.spec.key: v for v in build_views(paper, list(found.values())).views}
    row = next(r for r in views["table2_left"].rows if r.backbone == "bert-base-cased" and r.method == "P-tuning")
    cell = views["table2_left"].grid[views["table2_left"].rows.index(row)][0]
    assert (cell.ours.value, cell.paper.value, round(cell.delta, 6)) == (48.0, 48.3, -0.3)


@pytest.mark.parametrize("kind, args, table, paper_backbone, rule", [
    ("lama", ("smollm2-135m", "ptuning", "29k"), "table2_right", "gpt2-medium", "nearest causal backbone of Table 2 right"),
    ("lama", ("smollm2-135m", "mp", "34k"), "table2_left", "bert-base-cased",
     "Table 2 left has no causal LM; its bert-base-cased row"),
    ("lama", ("roberta-large", "ptuning", "34k"), "table2_left", "bert-base-cased", "nearest masked backbone of Table 2 left"),
    ("superglue", ("supervised", "smollm2-135m", "ptuning", "cb"), "table3", "gpt2", "nearest causal backbone of Table 3"),
    ("superglue", ("supervised", "roberta-base", "cls-ft", "cb"), "table3", "bert-base-cased",
     "nearest masked backbone of Table 3"),
    ("superglue", ("fewshot", "smollm2-135m", "ptuning", "cb"), "table5", "albert-xxlarge-v2",
     "Table 5 has no causal LM; its albert-xxlarge-v2 row"),
    ("superglue", ("fewshot", "my-model", "ptuning", "cb"), "table5", "albert-xxlarge-v2",
     "backbone family unknown; Table 5 ran P-tuning only on albert-xxlarge-v2"),
    ("superglue", ("supervised", "my-model", "ptuning", "cb"), "table3", None,
     "not compared: backbone family unknown (record config.backbone_kind in the result)"),
    ("superglue", ("fewshot", "smollm2-135m", "mp", "cb"), "table5", None,
     "not compared: the paper has no row for our `mp` in Table 5"),
    ("superglue", ("supervised", "gpt2", "ptuning-frozen", "cb"), "table3", None,
     "not compared: the paper has no row for our `ptuning-frozen` in Table 3"),
    ("lama", ("bert-base-cased", "ft", "34k"), "table2_left", None, "not compared: Table 2 left has no FT row"),
    ("lama", ("gpt2", "ptuning", "full"), "lama_full", None, "not compared: the paper has no table for this setting"),
])
def test_nearest_row_rule_and_rows_without_a_paper_counterpart(tmp_path, kind, args, table, paper_backbone, rule):
    if kind == "lama":
        lama(tmp_path, *args, macro=30.0)
    else:
        superglue(tmp_path, *args, mean={"acc": 50.0, "f1_macro": 40.0})
    paper = load_paper_tables()
    (result,) = load_results(tmp_path)
    spec = route(result, paper)
    row = compared_row(spec, paper, result)
    assert (spec.key, row.paper_backbone, row.rule) == (table, paper_backbone, rule)


def test_declared_backbone_kind_picks_the_nearest_row(tmp_path):
    superglue(tmp_path, "supervised", "/models/my-model", "ptuning", "cb", {"acc": 50.0}, backbone_kind="masked")
    paper = load_paper_tables()
    (result,) = load_results(tmp_path)
    assert result.backbone == "my-model"
    row = compared_row(route(result, paper), paper, result)
    assert (row.paper_backbone, row.rule) == ("bert-base-cased", "nearest masked backbone of Table 3")


def test_lama_result_on_a_subset_of_relations_is_partial(tmp_path):
    full = {f"P{i}": {"p_at_1": 30.0, "kept": 10, "dropped": 0, "partial": False} for i in range(41)}
    lama(tmp_path, "gpt2-medium", "ptuning", "29k", 30.0, 30.0, full)
    lama(tmp_path, "gpt2-medium", "mp", "29k", 30.0, 30.0, dict(list(full.items())[:5]))
    found = {r.method: r for r in load_results(tmp_path)}
    assert (found["ptuning"].partial, found["ptuning"].partial_reasons) == (False, ())
    assert (found["mp"].partial, found["mp"].partial_reasons) == (True, ("macro over 5 of the 41 T-REx relations",))


# ---- the Avg rule -----------------------------------------------------------------------------------------------

def test_avg_is_the_papers_mean_with_cb_and_multirc_averaged_first():
    # Table 3, BERT-base CLS-FT: (72.9 + (85.1+73.9)/2 + 71.1 + 68.4 + (16.2+66.3)/2 + 63.5 + 67.0) / 7
    values = {("BoolQ", "acc"): 72.9, ("CB", "acc"): 85.1, ("CB", "f1_macro"): 73.9, ("WiC", "acc"): 71.1,
              ("RTE", "acc"): 68.4, ("MultiRC", "em"): 16.2, ("MultiRC", "f1a"): 66.3, ("WSC", "acc"): 63.5,
              ("COPA", "acc"): 67.0}
    avg = superglue_average(values)
    assert avg.value == pytest.approx(463.65 / 7) and round(avg.value, 1) == 66.2  # the paper prints 66.2
    del values[("MultiRC", "f1a")]
    values[("ReCoRD", "em")] = 10.0
    partial = superglue_average(values)
    assert (partial.value, partial.tasks_present, partial.missing) == (None, 6, ("MultiRC",))


def test_avg_in_tables_ours_complete_incomplete_and_the_papers_computed(tmp_path):
    small_result_set(tmp_path)
    views = {v.spec.key: v for v in build_views(load_paper_tables(), load_results(tmp_path)).views}
    t3 = views["table3"]
    row = next(r for r in t3.rows if r.backbone == "gpt2" and r.method == "P-tuning")
    avg = t3.grid[t3.rows.index(row)][t3.columns.index(next(c for c in t3.columns if c.is_avg))]
    # (75.0 + (91.1+93.2)/2 + 68.3 + 70.8 + (23.5+69.8)/2 + 63.5 + 76.0) / 7
    assert avg.ours.value == pytest.approx((75.0 + 92.15 + 68.3 + 70.8 + 46.65 + 63.5 + 76.0) / 7)
    assert (avg.paper.value, avg.paper.status) == (70.4, "transcribed")
    t5 = views["table5"]
    row = next(r for r in t5.rows if r.backbone == "smollm2-135m")
    avg = t5.grid[t5.rows.index(row)][-1]
    assert (avg.ours.value, avg.ours.incomplete, avg.ours.partial) == (None, "incomplete 1/7", True)
    # Table 5 prints no Avg: the paper's own cells are averaged the same way and marked as computed here
    assert avg.paper.status == "computed" and avg.paper.text == "75.8"
    assert avg.delta is None


# ---- summary counts -----------------------------------------------------------------------------------------------

def test_summary_counts_same_backbone_nearest_and_missing_with_tolerance(tmp_path):
    small_result_set(tmp_path)
    lama(tmp_path, "bert-base-cased", "ptuning", "34k", 48.0)
    views = build_views(load_paper_tables(), load_results(tmp_path)).views
    loose, strict = summarize(views, 1.0), summarize(views, 0.1)
    assert len(loose.same) == 10 and loose.within(loose.same) == 10   # 9 GPT-2 cells + LAMA-34k (-0.3)
    assert strict.within(strict.same) == 9
    assert len(loose.nearest) == 4 and loose.within(loose.nearest) == 0  # 2 LAMA + 2 few-shot CB
    runnable = sum(1 for c in load_paper_tables().cells
                   if c.table != "Table 1" and c.task != "Avg" and c.value is not None
                   and c.method in {"MP", "FT", "MP+FT", "P-tuning", "CLS-FT", "PET-FT", "PET-zero-shot"})
    assert len(loose.same) + len(loose.missing) == runnable
    gap = loose.largest_gaps(1)[0]
    assert (gap.table, gap.row.backbone, gap.column.label, round(gap.delta, 2)) == (
        "Table 5", "smollm2-135m", "CB F1", -32.24)


# ---- markdown and CSV, line by line ---------------------------------------------------------------------------

@pytest.fixture
def small_report(tmp_path):
    results = small_result_set(tmp_path / "results")
    report = build_report(ReportOptions(results=results, reproducing=None, plots=False))
    return results / "tables", report


def test_lama_table_markdown_line_by_line(small_report):
    tables, _ = small_report
    lines = (tables / "table2_right.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "## Table 2 (right): LAMA-29k P@1"
    assert lines[2] == ("Paper: arXiv v1 (2103.10385v1), Table 2 right (LAMA-29k; MP/P-tuning frozen LM, FT rows "
                        "fine-tune the LM). Each cell: ours / paper (ours − paper), in points.")
    assert lines[4] == "| Method | Backbone | Compared with | LAMA P@1 | LAMA P@1 micro |"
    assert lines[6] == "| MP | bert-base-cased | paper row | — / 31.7† | — / — |"
    assert lines[9] == "| P-tuning | bert-base-cased | paper row [a] | — / 52.3 | — / — |"
    assert "| FT | megatron-11b | paper row [b] | — / n/r | — / — |" in lines
    assert lines[36:38] == [
        "| MP | smollm2-135m | gpt2-medium (nearest causal backbone of Table 2 right) | 12.5 *1 / 20.3† (-7.8) | 14.0 *1 / — |",
        "| P-tuning | smollm2-135m | gpt2-medium (nearest causal backbone of Table 2 right) [a] | 27.6 *2 / 46.5 (-18.9) | 30.1 *2 / — |",
    ]
    assert lines[39].startswith("Marks: † paper value transcribed")
    assert lines[41:] == [
        "Paper notes:",
        "- [a] each P-tuning cell's printed gain over MP checks out",
        "- [b] OOM in the paper",
        "",
        "Partial results:",
        "- *1 results/lama/smollm2-135m/mp-29k/summary.json: P17, P190: test file rebuilt; "
        "macro over 2 of the 41 T-REx relations",
        "- *2 results/lama/smollm2-135m/ptuning-29k/summary.json: P17, P190: test file rebuilt; "
        "macro over 2 of the 41 T-REx relations",
    ]


def test_superglue_markdown_shows_missing_partial_and_absent_cells(small_report):
    tables, _ = small_report
    lines = (tables / "table5.md").read_text(encoding="utf-8").splitlines()
    assert lines[4] == ("| Method | Backbone | Compared with | BoolQ acc | CB acc | CB F1 | WiC acc | RTE acc | "
                        "MultiRC EM | MultiRC F1a | WSC acc | COPA acc | Avg |")
    assert lines[9] == ("| P-tuning | albert-xxlarge-v2 | paper row [a][e] | — / 77.8† | — / 92.9 | — / 92.3 | "
                        "— / 56.3† | — / 76.5† | — / 36.1† | — / 75.0† | — / 84.6 | — / 87.0 | — / 75.8‡ |")
    assert lines[10] == ("| P-tuning | smollm2-135m | albert-xxlarge-v2 (Table 5 has no causal LM; its "
                         "albert-xxlarge-v2 row) [a][e] | — / 77.8† | 70.0±1.2 *1 / 92.9 (-22.9) | "
                         "60.1±2.0 *1 / 92.3 (-32.2) | — / 56.3† | — / 76.5† | — / 36.1† | — / 75.0† | — / 84.6 | "
                         "— / 87.0 | incomplete 1/7 *1 / 75.8‡ |")
    assert lines[-1] == "- *1 results/superglue/fewshot/smollm2-135m/ptuning/cb.json: evaluated on 20 of 56 examples"
    t3 = (tables / "table3.md").read_text(encoding="utf-8").splitlines()
    assert t3[4].endswith("| COPA acc | Avg | ReCoRD EM | ReCoRD F1 |")  # columns only ours has, shown
    assert t3[14].startswith("| P-tuning | smollm2-135m | gpt2 (nearest causal backbone of Table 3) [c] | — / 75.0† |")
    assert t3[14].endswith("| — / 76.0† | — / 70.4† | 20.0 / — | 21.0 / — |")  # ReCoRD: paper cell absent, 1 seed
    assert t3[13].startswith("| P-tuning | gpt2 | same backbone [c] | 75.0±0.0 / 75.0† (+0.0) |")
    assert t3[13].endswith("| 70.3 / 70.4† (-0.1) | — / — | — / — |")


def test_csv_has_the_same_cells_as_machine_readable_columns(small_report):
    tables, _ = small_report
    text = (tables / "table5.csv").read_text(encoding="utf-8").splitlines()
    assert text[0] == ("table,paper_table,method,our_method,backbone,paper_method,paper_backbone,compared_with,task,"
                       "metric,ours,std,n_seeds,paper,delta,status,paper_note,partial,partial_reason,incomplete,sources")
    assert ("table5,Table 5,P-tuning,ptuning,smollm2-135m,P-tuning,albert-xxlarge-v2,Table 5 has no causal LM; its "
            "albert-xxlarge-v2 row,CB,f1_macro,60.06,2.0,3,92.3,-32.24,corroborated,model selected on dev32,True,"
            "evaluated on 20 of 56 examples,,results/superglue/fewshot/smollm2-135m/ptuning/cb.json") in text
    assert ("table5,Table 5,PET,,albert-xxlarge-v2,PET,albert-xxlarge-v2,paper row,BoolQ,acc,,,,79.4,,transcribed,"
            "baseline row reprinted from its own paper,,,,") in text
    frame = pd.read_csv(tables / "table5.csv")
    avg = frame[(frame.backbone == "smollm2-135m") & (frame.task == "Avg")].iloc[0]
    assert (avg.incomplete, avg.status, round(avg.paper, 4)) == ("incomplete 1/7", "computed", 75.7643)
    assert pd.isna(avg.ours) and bool(avg.partial)
    combined = pd.read_csv(tables / "comparison.csv")
    assert set(combined.table) == {"table1", "table2_left", "table2_right", "table3", "table4", "table5"}
    assert len(combined) == sum(len(pd.read_csv(tables / f"{t}.csv")) for t in set(combined.table))


def test_lama_per_relation_table_and_csv(small_report):
    tables, _ = small_report
    lines = (tables / "lama_relations_smollm2-135m_29k.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "## LAMA-29k P@1 per relation: smollm2-135m"
    assert lines[4:11] == [
        "| Relation | MP P@1 | P-tuning P@1 | P-tuning − MP | kept | dropped |",
        "| --- | --- | --- | --- | --- | --- |",
        "| P17 * | 20.0 | 45.0 | +25.0 | 900 | 12 |",
        "| P101 | 5.0 | 10.2 | +5.2 | 500 | 3 |",
        "| P190 * | — | — | — | 40 | 1 |",
        "| **macro (mean over relations)** | 12.5 | 27.6 | +15.1 |  |  |",
        "| **micro (all facts)** | 14.0 | 30.1 | +16.1 |  |  |",
    ]
    assert lines[-6:] == [
        "- P17: test file rebuilt",
        "- P190: test file rebuilt",
        "",
        "— not evaluated:",
        "- P190 (MP): no train facts",
        "- P190 (P-tuning): no train facts",
    ]
    csv_lines = (tables / "lama_relations_smollm2-135m_29k.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == ("backbone,vocab,relation,method,paper_method,p_at_1,kept,dropped,partial,partial_reason,"
                            "skipped,source")
    assert csv_lines[1] == ("smollm2-135m,29k,P17,mp,MP,20.0,900,12,True,test file rebuilt,,"
                            "results/lama/smollm2-135m/mp-29k/summary.json")
    assert csv_lines[-1] == ("smollm2-135m,29k,P190,ptuning,P-tuning,,40,1,True,test file rebuilt,no train facts,"
                             "results/lama/smollm2-135m/ptuning-29k/summary.json")
    assert len(csv_lines) == 7


def test_report_without_results_still_writes_the_paper_tables(tmp_path):
    (tmp_path / "results").mkdir()
    report = build_report(ReportOptions(results=tmp_path / "results", reproducing=None, plots=False))
    views = views_by_key(report)
    assert "lama_full" not in views and not any(v.has_ours for v in views.values())
    assert (tmp_path / "results/tables/table4.md").read_text(encoding="utf-8").count("| — / ") == 6 * 10
    assert report.lines[0] == "Results read: 0 file(s); skipped as malformed: 0."

