"""Choosing a LAMA schedule on dev (issue 11): `scripts/lama_schedule_search.py` runs each candidate through the real
command over several seeds and records every relation's best dev P@1 per seed (never a test score), and the report's
"schedules" section shows what the choice rested on. Tiny random GPT-2 on real LAMA lines."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

from repro.report.schedules import schedules_section
from repro.results import seed_folder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lama_schedule_search.py"
BASE = ("--relations P101,P1376 --max-train 16 --max-dev 8 --dtype float32 --batch-size 4 --max-steps 4 "
        "--eval-every 2")


def _search(argv: list[str], monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("lama_schedule_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    assert module.main() == 0


def test_search_records_each_relations_best_dev_per_seed_and_the_report_shows_the_choice(
        tiny_dirs, shared_data, tmp_path, monkeypatch):
    results = tmp_path / "results"
    out = results / "lama" / "gpt2" / "cpu_schedule_search.json"
    out.parent.mkdir(parents=True)
    scratch = tmp_path / "scratch"
    common = ["--backbone", str(tiny_dirs["gpt2"]), "--seeds", "34,35", "--data-root", str(shared_data),
              "--scratch", str(scratch), "--out", str(out)]
    _search([*common, "--candidate", f"slow: {BASE} --lr-encoder 1e-6", "--candidate", f"fast: {BASE} --lr-encoder 3e-2",
             "--chosen", "fast", "--rule", "the highest mean best dev P@1"], monkeypatch)
    search = json.loads(out.read_text())
    assert search["seeds"] == [34, 35] and search["chosen"] == "fast"
    for name, lr in (("slow", 1e-6), ("fast", 3e-2)):
        candidate = search["candidates"][name]
        run_dir = scratch / name / "lama" / "gpt2" / "ptuning-29k"
        per_seed = {}
        for seed in (34, 35):
            files = {rid: json.loads((seed_folder(run_dir, seed) / f"{rid}.json").read_text()) for rid in ("P101", "P1376")}
            for rid, data in files.items():
                assert data["config"]["train"]["lr_encoder"] == lr  # the candidate's flags reached the real command
                assert candidate["best_dev_p_at_1"][rid][str(seed)] == data["training"]["best_dev_p_at_1"]
            per_seed[seed] = statistics.mean(d["training"]["best_dev_p_at_1"] for d in files.values())
        assert candidate["per_seed"] == {str(s): round(v, 2) for s, v in per_seed.items()}
        assert candidate["mean_best_dev_p_at_1"] == round(statistics.mean(per_seed.values()), 2)
        assert "p_at_1" not in json.dumps(candidate).replace("best_dev_p_at_1", "")  # test scores are never read

    # a finished run read back (--from-run) gives the same dev scores; candidates of a file written before
    # candidates kept their invocation get the file's command, before a new one replaces it
    first_command = search["command"]
    for c in search["candidates"].values():
        del c["invocation"]
    out.write_text(json.dumps(search))
    _search([*common, "--from-run", f"again={scratch / 'fast' / 'lama' / 'gpt2' / 'ptuning-29k'}"], monkeypatch)
    search = json.loads(out.read_text())
    assert search["candidates"]["again"]["best_dev_p_at_1"] == search["candidates"]["fast"]["best_dev_p_at_1"]

    section = schedules_section(results)
    assert "lama/gpt2/cpu_schedule_search.json" in section and "**fast (chosen)**" in section
    fast = search["candidates"]["fast"]
    assert f"{fast['mean_best_dev_p_at_1']:.2f} ± {fast['std_over_seeds']:.2f}" in section
    assert "Rule: the highest mean best dev P@1" in section
    assert search["candidates"]["fast"]["invocation"] == first_command  # each keeps the run that made it
    assert first_command.count("--candidate") == 2 and search["command"] != first_command
    assert "--from-run again=" in search["candidates"]["again"]["invocation"]
    for name in ("fast", "again"):  # a later invocation does not hide the earlier one
        assert f"`{search['candidates'][name]['invocation']}`" in section
    again = next(line for line in section.splitlines() if line.startswith("| again |"))
    assert "lr_encoder 0.03" in again and "max_steps 4" in again  # read from its files' configs against the preset
    for data in map(json.loads, map(Path.read_text, (scratch / "fast").rglob("P*.json"))):
        assert data["command"].startswith("python -m repro lama ")  # files say the lama command, not the search
