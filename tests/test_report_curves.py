"""Training curves: the report draws one sheet per trained run group (all relations of a LAMA run; the seeds of
each SuperGLUE task overlaid) from the histories in the result files, and none for runs that did not train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from repro.report.build import ReportOptions, build_report
from repro.report.curves import lama_histories, superglue_histories
from repro.report.results import discover_results

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for method in ("mp-29k", "ptuning-29k"):
        shutil.copytree(ROOT / "results/lama/smollm2-135m" / method, root / "lama/smollm2-135m" / method)
    target = root / "superglue/fewshot/smollm2-135m/ptuning"
    target.mkdir(parents=True)
    data = json.loads((ROOT / "results/superglue/fewshot/smollm2-135m/ptuning/cb.json").read_text())
    for k, seed in enumerate(data["training"]):  # histories as the suite now keeps them in the result file
        data["training"][seed]["history"] = [{"step": 10, "epoch": 0, "dev": 50.0 + k, "loss": 1.2},
                                             {"step": 20, "epoch": 1, "dev": 60.0 + k, "loss": 0.8}]
    (target / "cb.json").write_text(json.dumps(data))
    return root


def test_histories_are_read_per_relation_and_per_seed(tmp_path):
    root = _results(tmp_path)
    found = {(r.kind, r.method, r.task): r for r in discover_results(root).results}
    lama = lama_histories(found[("lama", "ptuning", "lama")])
    summary = json.loads((root / "lama/smollm2-135m/ptuning-29k/summary.json").read_text())
    assert len(lama) == summary["n_relations"]  # every trained relation, none of the untrained three
    seeds = list(summary["seeds"])
    assert len(seeds) == 3
    for seed in seeds:  # the authors' seed 34 at the run folder's top, the others in seed<S>/
        folder = root / "lama/smollm2-135m/ptuning-29k" / ("" if seed == "34" else f"seed{seed}")
        assert lama["P17"][seed] == json.loads((folder / "P17.json").read_text())["training"]["history"]
    assert lama["P17"]["35"] != lama["P17"]["34"]
    assert lama_histories(found[("lama", "mp", "lama")]) == {}  # MP trains nothing
    seeds = superglue_histories(found[("superglue", "ptuning", "cb")])
    assert sorted(seeds) == ["42", "43", "44"] and seeds["43"][1]["dev"] == 61.0


def test_the_report_draws_one_sheet_per_trained_group(tmp_path):
    root = _results(tmp_path)
    report = build_report(ReportOptions(results=root, reproducing=None, plots=True))
    curves = sorted(p for p in report.plots if p.parent.name == "curves")
    assert [p.name for p in curves] == ["lama_smollm2-135m_ptuning-29k.png",
                                        "superglue_fewshot_smollm2-135m_ptuning.png"]
    for path in curves:
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    big = int.from_bytes(curves[0].read_bytes()[16:20], "big")  # 38 relation panels: a wide sheet
    assert big > 1500
    stale = root / "plots/curves/lama_gone.png"
    stale.write_bytes(b"old")
    report = build_report(ReportOptions(results=root, reproducing=None, plots=True))
    assert not stale.exists()  # a curve no result backs any more is removed
