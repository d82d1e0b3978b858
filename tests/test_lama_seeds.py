"""LAMA over several seeds (issue 16, "known spread"): `--seeds N` trains each seed into its own folder of the
run folder, and the one summary holds each seed's macro and micro P@1 with their mean ± std and, per relation,
the mean, std and per-seed P@1. Tiny random GPT-2 on the real LAMA files, P-tuning with a few steps."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from repro.cli import main
from repro.experiment.lama import PRESETS, LamaConfig, counted_seeds, format_summary, run_lama, seed_folder
from repro.report.results import read_result
from repro.results import load as load_frame

TINY_TRAIN = replace(PRESETS["cpu"].train, max_steps=4, eval_every_steps=2, batch_size=4, lr_encoder=3e-2)
TWO = ["P101", "P1376"]


def _config(method: str = "ptuning", relations=TWO, seeds=(34,)) -> LamaConfig:
    return LamaConfig(method=method, relations=list(relations), seeds=list(seeds), train=TINY_TRAIN, max_train=16,
                      max_dev=8, dtype="float32", eval_batch_size=16)


def _run(load_tiny, config, root, results):
    return run_lama(config, root=root, results_root=results, backbone=load_tiny("gpt2"), quiet=True)


def _folder(results: Path, method: str = "ptuning") -> Path:
    return results / "lama" / "gpt2" / f"{method}-29k"


def _relation(results: Path, seed: int, rid: str) -> dict:
    return json.loads((seed_folder(_folder(results), seed) / f"{rid}.json").read_text())


@pytest.fixture(scope="module")
def two_seeds(load_tiny, shared_data, tmp_path_factory):
    """One run with seeds 34 and 35, and each seed run alone in its own results folder."""
    base = tmp_path_factory.mktemp("seeds")
    together = _run(load_tiny, _config(seeds=(34, 35)), shared_data, base / "together")
    alone = {seed: _run(load_tiny, _config(seeds=(seed,)), shared_data, base / f"alone{seed}") for seed in (34, 35)}
    return base, together, alone


def test_each_seed_is_written_to_its_own_folder_with_the_numbers_of_a_run_of_that_seed_alone(two_seeds):
    base, together, alone = two_seeds
    assert (_folder(base / "together") / "P1376.json").is_file()  # the authors' seed: the run folder itself
    assert (_folder(base / "together") / "seed35" / "P1376.json").is_file()
    for seed in (34, 35):
        for rid in TWO:
            ours, theirs = _relation(base / "together", seed, rid), _relation(base / f"alone{seed}", seed, rid)
            assert ours["config"]["seeds"] == [seed] and ours["config"]["seed"] == seed
            assert ours["config_fingerprint"] == theirs["config_fingerprint"]
            assert (ours["p_at_1"], ours["correct"]) == (theirs["p_at_1"], theirs["correct"])
            assert ours["training"]["history"] == theirs["training"]["history"]
    # different seeds train differently (their training histories differ)
    assert _relation(base / "together", 34, "P1376")["training"]["history"] != \
        _relation(base / "together", 35, "P1376")["training"]["history"]


def test_summary_holds_each_seed_and_the_mean_and_std_over_seeds(two_seeds):
    base, together, alone = two_seeds
    assert together["config"]["seeds"] == [34, 35]
    for key in ("macro_p_at_1", "micro_p_at_1"):
        per_seed = [alone[s][key] for s in (34, 35)]
        assert together["seeds"] == {str(s): {"macro_p_at_1": alone[s]["macro_p_at_1"],
                                              "micro_p_at_1": alone[s]["micro_p_at_1"]} for s in (34, 35)}
        assert together[key] == pytest.approx(statistics.mean(per_seed))
        assert together["std"][key] == pytest.approx(statistics.stdev(per_seed))
    for rid in TWO:
        entry = together["relations"][rid]
        values = [alone[s]["relations"][rid]["p_at_1"] for s in (34, 35)]
        assert entry["seeds"] == {"34": values[0], "35": values[1]}
        assert entry["p_at_1"] == pytest.approx(statistics.mean(values))
        assert entry["p_at_1_std"] == pytest.approx(statistics.stdev(values))
    assert alone[34]["std"] == {"macro_p_at_1": 0.0, "micro_p_at_1": 0.0}  # one seed: its numbers, no spread
    on_disk = json.loads((_folder(base / "together") / "summary.json").read_text())
    assert on_disk["macro_p_at_1"] == together["macro_p_at_1"]


def test_report_and_terminal_table_show_the_spread(two_seeds, capsys):
    base, together, alone = two_seeds
    result = read_result(_folder(base / "together") / "summary.json", base / "together")
    assert result.n_seeds == 2 and result.std["macro_p_at_1"] == pytest.approx(together["std"]["macro_p_at_1"])
    assert set(result.seed_metrics) == {"34", "35"}
    frame = load_frame(base / "together")
    p101 = frame[frame.task == "P101"].set_index("seed").value
    assert p101.to_dict() == {34: together["relations"]["P101"]["seeds"]["34"],
                              35: together["relations"]["P101"]["seeds"]["35"]}
    macro = frame[(frame.task == "all") & (frame.metric == "macro_p_at_1")].set_index("seed").value
    assert macro.mean() == pytest.approx(together["macro_p_at_1"])
    capsys.readouterr()
    assert main(["lama-table", "--backbone", "gpt2", "--methods", "ptuning", "--results", str(base / "alone34"),
                 "--reference", str(base / "together")]) == 0
    out = capsys.readouterr().out
    macro = next(line.split() for line in out.splitlines() if line.startswith("macro"))
    assert macro[1:3] == [f"{alone[34]['macro_p_at_1']:.1f}",  # ours: seed 34 | reference: mean ± std of 34, 35
                          f"{together['macro_p_at_1']:.1f}±{together['std']['macro_p_at_1']:.1f}"]
    assert "reference P-tuning: mean over seeds 34, 35" in out
    text = format_summary(together)
    assert "seeds 34, 35" in text
    assert f"{together['macro_p_at_1']:.2f} ± {together['std']['macro_p_at_1']:.2f}" in text


def test_a_later_seed_run_adds_its_seed_and_a_subset_never_shrinks_the_summary(load_tiny, shared_data, tmp_path):
    first = _run(load_tiny, _config(seeds=(34,)), shared_data, tmp_path)
    assert list(first["seeds"]) == ["34"]
    partial = _run(load_tiny, _config(relations=["P1376"], seeds=(35,)), shared_data, tmp_path)
    # seed 35 has one of the two relations: left out of the mean, said in the notes
    assert list(partial["seeds"]) == ["34"] and partial["n_relations"] == 2
    assert partial["macro_p_at_1"] == first["macro_p_at_1"]
    assert any("seeds left out" in note and "35 (1 relations)" in note for note in partial["notes"])
    full = _run(load_tiny, _config(seeds=(35,)), shared_data, tmp_path)  # P1376 of seed 35 is reused
    assert list(full["seeds"]) == ["34", "35"] and full["n_relations"] == 2
    assert full["relations"]["P1376"]["seeds"]["35"] == partial_p1376(tmp_path)


def partial_p1376(results: Path) -> float:
    return _relation(results, 35, "P1376")["p_at_1"]


@pytest.mark.parametrize("given", [{}, {"mask_order": "code"}, {"fidelity": "authors"}])
def test_one_seed_of_a_config_is_the_config_a_one_seed_command_builds(given):
    several = LamaConfig(method="ptuning", seeds=[34, 35, 36], **given)
    for seed in (34, 35):
        assert several.for_seed(seed).fingerprint() == LamaConfig(method="ptuning", seeds=[seed], **given).fingerprint()
        assert several.for_seed(seed).for_seed(seed).to_dict() == several.for_seed(seed).to_dict()


def test_counted_seeds_averages_only_seeds_over_the_same_relations():
    rel = {"p_at_1": 1.0}
    assert counted_seeds({34: {"A": rel, "B": rel}, 35: {"B": rel, "A": rel}}, ["A", "B"]) == ([34, 35], ["A", "B"])
    assert counted_seeds({34: {"A": rel}, 35: {"B": rel}, 36: {"A": rel, "B": rel}}, ["B", "A"]) == ([36], ["B", "A"])
    # no seed has every relation: the seed with the most, and every seed that has those
    assert counted_seeds({34: {"A": rel, "B": rel}, 35: {"C": rel}, 36: {"A": rel, "B": rel}},
                         ["A", "B", "C"]) == ([34, 36], ["A", "B"])
    assert counted_seeds({}, ["A"]) == ([], [])


def test_mp_with_several_seeds_is_evaluated_once(load_tiny, shared_data, tmp_path, capsys):
    summary = _run(load_tiny, _config(method="mp", relations=["P1376"], seeds=(34, 35, 36)), shared_data, tmp_path)
    assert "evaluated once, with seed 34" in capsys.readouterr().err
    assert list(summary["seeds"]) == ["34"] and not (_folder(tmp_path, "mp") / "seed35").exists()


def test_cli_seeds_count_starts_at_the_authors_seed(tiny_dirs, shared_data, tmp_path, capsys):
    assert main(["lama", "--backbone", str(tiny_dirs["gpt2"]), "--method", "ptuning", "--relations", "P1376",
                 "--seeds", "2", "--max-steps", "2", "--eval-every", "1", "--batch-size", "4",
                 "--max-train", "8", "--max-dev", "4", "--dtype", "float32", "--data-root", str(shared_data),
                 "--results", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    backbone = Path(tiny_dirs["gpt2"]).name
    summary = json.loads((tmp_path / "lama" / backbone / "ptuning-29k" / "summary.json").read_text())
    assert summary["config"]["seeds"] == [34, 35] and "seeds 34, 35" in out
    assert (tmp_path / "lama" / backbone / "ptuning-29k" / "seed35" / "P1376.json").is_file()


def test_known_spread_section_states_the_seed_spread_and_each_variant_against_its_original(two_seeds, load_tiny,
                                                                                    shared_data):
    import torch

    from repro.report.results import discover_results
    from repro.report.spread import SPREAD_DIR, spread_section

    base, together, _ = two_seeds
    results = base / "together"
    threads = torch.get_num_threads()
    other = 1 if threads != 1 else 2
    try:
        variant = run_lama(_config(seeds=(34,)), root=shared_data, results_root=results / SPREAD_DIR / "threads",
                           backbone=load_tiny("gpt2"), quiet=True, threads=other)
    finally:
        torch.set_num_threads(threads)
    found = discover_results(results, exclude=[results / SPREAD_DIR]).results
    assert [r.display for r in found] == ["together/lama/gpt2/ptuning-29k/summary.json"]
    text = spread_section(found, results)
    seed_row = next(line for line in text.splitlines() if line.startswith("| together/lama"))
    cells = [c.strip() for c in seed_row.split("|")[1:-1]]
    assert cells[1] == "34, 35"
    assert cells[3] == f"{together['macro_p_at_1']:.1f} ± {together['std']['macro_p_at_1']:.1f}"
    stds = {rid: together["relations"][rid]["p_at_1_std"] for rid in TWO}
    assert cells[5] == f"{max(stds.values()):.1f} ({max(stds, key=stds.get)})"
    variant_row = next(line for line in text.splitlines() if line.startswith("| threads |"))
    assert f"threads {threads} -> {other}" in variant_row
    assert f"macro_p_at_1 {variant['macro_p_at_1']:.2f}" in variant_row
    # the variant compares with the committed seed-34 relation files, not with the seeds' mean
    cells = [c.strip() for c in variant_row.split("|")[1:-1]]
    assert cells[3] == f"macro_p_at_1 {together['seeds']['34']['macro_p_at_1']:.2f} (seed 34)"
    assert cells[5].endswith(f"of {len(TWO)} relations") or f"of {len(TWO)} relations," in cells[5]
