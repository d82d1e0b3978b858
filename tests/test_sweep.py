"""`python -m repro sweep`: specs checked before anything runs, cell states from the results on disk, the local
and the Ray executor giving the same results, and a worker killed mid-sweep losing nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro.cli import main
from repro.errors import ConfigError
from repro.experiment.engine import Workspace
from repro.sweep.cells import expand
from repro.sweep.cli import format_plan, run
from repro.sweep.spec import parse_spec
from repro.sweep.state import State, cell_state, write_failure

RELATIONS = ["P101", "P1376", "P19"]
TINY_LAMA = {"max_train": 16, "max_dev": 8, "dtype": "float32", "eval_batch_size": 16}
TINY_TRAIN = {"max_steps": 4, "eval_every_steps": 2, "batch_size": 4, "lr_encoder": 1e-2}
TESTS = Path(__file__).resolve().parent


def lama_spec(backbone: Path, **changes) -> dict:
    spec = {"benchmark": "lama", "backbones": [str(backbone)], "methods": ["mp", "ptuning"], "presets": ["cpu"],
            "vocabs": ["full"], "relations": RELATIONS, "config": dict(TINY_LAMA), "train": dict(TINY_TRAIN)}
    spec.update(changes)
    return spec


def groups_of(spec: dict, shared_data: Path):
    from repro.tasks import lama as lama_data

    ids = [r.id for r in lama_data.load_relations(shared_data)]
    return expand(parse_spec(spec, relation_ids=ids), ids)


def where(tmp: Path, shared_data: Path) -> dict:
    return {"root": shared_data, "results_root": tmp / "results", "runs_root": tmp / "runs", "quiet": True,
            "threads": 1}


def lama_numbers(results: Path) -> dict:
    """Every relation file and summary, without what differs between any two runs (times, command, host)."""
    out = {}
    for path in sorted(results.rglob("*.json")):
        data = json.loads(path.read_text())
        for key in ("wall_time_s", "environment", "command", "git_commit", "shared_pass", "date", "cpu_model"):
            data.pop(key, None)
        out[str(path.relative_to(results))] = data
    return out


# ------------------------------------------------------------------------------------- checked up front
@pytest.mark.parametrize("change, named", [
    ({"config": {"max_trian": 3}}, "max_trian"),
    ({"train": {"lr": 0.1}}, "'lr'"),
    ({"methods": ["mp", "ptuningg"]}, "ptuningg"),
    ({"relations": ["P101", "P9999"]}, "P9999"),
    ({"backbones": ["gpt-17"]}, "gpt-17"),
    ({"backbones": ["./no/such/model"]}, "./no/such/model"),
    ({"vocabs": ["12k"]}, "12k"),
    ({"tasks": ["cb"]}, "'tasks' applies to superglue"),
    ({"epochs": 3}, "epochs"),
    ({"config": {"dtype": "float16"}}, "float16"),
])
def test_a_bad_spec_fails_before_anything_runs_naming_it(load_tiny, tiny_dirs, shared_data, tmp_path, capsys,
                                                         change, named):
    spec_file = tmp_path / "spec.yaml"
    import yaml

    spec_file.write_text(yaml.safe_dump(lama_spec(tiny_dirs["gpt2"], **change)))
    status = main(["sweep", str(spec_file), "--run", "--data-root", str(shared_data),
                   "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and named in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_unknown_task_and_method_name_the_valid_ones(shared_data):
    with pytest.raises(ConfigError, match=r"unknown task 'cbb'.*valid: .*boolq.*cb"):
        parse_spec({"benchmark": "superglue", "tasks": "cbb"})
    with pytest.raises(ConfigError, match=r"unknown method 'pet'.*valid: .*cls-ft"):
        parse_spec({"benchmark": "superglue", "methods": ["pet"]})
    with pytest.raises(ConfigError, match=r"unknown sweep key 'model'"):
        parse_spec({"benchmark": "lama", "model": "x"})
    with pytest.raises(ConfigError, match=r"sweep seeds 42 asks for 42 seeds.*write '42,'"):
        parse_spec({"benchmark": "superglue", "tasks": "cb", "seeds": "42"})
    with pytest.raises(ConfigError, match=r"sweep seeds takes a count or a comma-separated list.*'4x'"):
        parse_spec({"benchmark": "superglue", "tasks": "cb", "seeds": "4x"})
    # the command line's forms: "42," is seed 42 alone, a YAML list as it is
    assert [g.seeds for g in parse_spec({"benchmark": "superglue", "tasks": "cb", "seeds": "42,"})] == [[42]]
    assert [g.seeds for g in parse_spec({"benchmark": "superglue", "tasks": "cb", "seeds": ["7", 9]})] == [[7, 9]]


def test_the_spec_as_flags(tiny_dirs, shared_data, tmp_path, capsys):
    status = main(["sweep", "--benchmark", "lama", "--backbones", str(tiny_dirs["gpt2"]), "--methods", "ptuning",
                   "--relations", "P101,P19", "--vocab", "full", "--set", "max_train=16", "--set", "dtype=float32",
                   "--train", "max_steps=2", "--plan", "--data-root", str(shared_data),
                   "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert status == 0 and "sweep: 1 runs, 2 cells: 2 pending" in out and "lama/gpt2/ptuning-full" in out
    groups = groups_of(lama_spec(tiny_dirs["gpt2"], train={"max_steps": 2}, config={"max_train": 16}), shared_data)
    assert groups[1].config().train.max_steps == 2 and groups[1].config().max_train == 16
    assert main(["sweep", "--benchmark", "lama", "--set", "max_train", "--plan"]) == 2
    assert "--set and --train take KEY=VALUE" in capsys.readouterr().err


def test_cells_are_single_runs_and_coupled_seeds_stay_together(tiny_dirs, shared_data):
    lama = groups_of(lama_spec(tiny_dirs["gpt2"]), shared_data)
    assert [g.key for g in lama] == ["lama/gpt2/mp-full", "lama/gpt2/ptuning-full"]
    assert [c.config().relations for c in lama[1].cells()] == [[r] for r in RELATIONS]
    assert all(c.config().sequential for c in lama[1].cells())
    seeded = groups_of({**lama_spec(tiny_dirs["gpt2"]), "seeds": 3}, shared_data)  # MP trains nothing: once
    assert [(g.key, g.config().seeds) for g in seeded] == [
        ("lama/gpt2/mp-full", [34]), ("lama/gpt2/ptuning-full", [34]), ("lama/gpt2/ptuning-full/seed35", [35]),
        ("lama/gpt2/ptuning-full/seed36", [36])]
    sg = expand(parse_spec({"benchmark": "superglue", "tasks": "cb,axb", "methods": "mp,ptuning", "seeds": 3}))
    assert {g.key: g.units for g in sg} == {
        "superglue/fewshot/smollm2-135m/mp/cb": [42], "superglue/fewshot/smollm2-135m/mp/rte": [42],
        "superglue/fewshot/smollm2-135m/ptuning/cb": [42, 43, 44],
        "superglue/fewshot/smollm2-135m/ptuning/rte": [42, 43, 44]}
    paper = expand(parse_spec({"benchmark": "superglue", "tasks": "cb", "methods": "ptuning", "presets": "paper"}))
    assert paper[0].units == [(42, 43, 44)]  # the paper's fidelity: seed_rule=once, one RNG stream over the seeds
    assert paper[0].key == "superglue/fewshot/smollm2-135m/ptuning-paper/cb"  # its own folder, not the cpu run's


def test_the_evidence_sweeps_expand_to_runs_of_their_own_folders(shared_data):
    """sweeps/evidence_*.yaml: every run in a folder of its own (an encoder or preset variant never shares the
    default run's folder), the committed default runs' folders among them only where the run is the same."""
    from repro.sweep.spec import read_spec

    root = Path(__file__).resolve().parents[1] / "sweeps"
    lama = groups_of(read_spec(root / "evidence_lama.yaml"), shared_data)
    keys = [g.key for g in lama]
    assert len(keys) == len(set(keys)) and "lama/smollm2-135m/ptuning-lstm-29k/seed36" in keys
    assert {"lama/smollm2-135m/ptuning-none-29k", "lama/smollm2-135m/ptuning-paper-29k"} <= set(keys)
    assert not any(k.startswith("lama/smollm2-135m/ptuning-29k") for k in keys)  # the committed cpu-preset (MLP) run
    dtypes = {g.key: g.config().lm_dtype(g.config().method_entry) for g in lama if "-paper-" in g.key}
    # the committed MP ran the paper fidelity's float16; P-tuning's many epochs run in bfloat16 (cpu_rates.py)
    assert dtypes == {"lama/smollm2-135m/mp-paper-29k": "float16", "lama/smollm2-135m/ptuning-paper-29k": "bfloat16"}
    sg = [g.key for g in expand(parse_spec(read_spec(root / "evidence_superglue.yaml")))]
    assert len(sg) == len(set(sg)) and "superglue/fewshot/smollm2-135m/mp-ft-cpu-long/cb" in sg


# ---------------------------------------------------------------------------------------------- --plan
def test_plan_on_a_half_finished_results_folder(tiny_dirs, shared_data, tmp_path):
    spec = lama_spec(tiny_dirs["gpt2"], methods=["ptuning"])
    groups = groups_of(spec, shared_data)
    w = where(tmp_path, shared_data)
    ws = Workspace(**w)
    p101, p1376, p19 = groups[0].cells()
    # P101 done; P1376 done with another config (stale); P19 failed once; then the spec's own state
    assert run(groups_of(lama_spec(tiny_dirs["gpt2"], methods=["ptuning"], relations=["P101"]), shared_data), w,
               quiet=True) == 0
    other = lama_spec(tiny_dirs["gpt2"], methods=["ptuning"], relations=["P1376"],
                      train={**TINY_TRAIN, "max_steps": 2})
    assert run(groups_of(other, shared_data), w, quiet=True) == 0
    write_failure(ws, p19.key, "RuntimeError: out of memory")
    states = {c.name: cell_state(c, ws) for c in (p101, p1376, p19)}
    assert states["P101"].state is State.DONE and states["P101"].wall_time_s > 0
    assert states["P1376"].state is State.STALE and states["P1376"].reason == "train.max_steps 2 -> 4"
    assert states["P19"].state is State.FAILED and states["P19"].reason == "RuntimeError: out of memory"
    plan = format_plan(groups, ws)
    assert "3 cells: 1 done, 1 failed, 1 stale" in plan and "FAILED  P19" in plan
    assert "estimate for the 2 cells left" in plan and "device-hours" in plan
    # --run reruns the failed and the stale cell, not the done one, then writes the summary
    before = (ws.results_root / "lama/gpt2/ptuning-full/P101.json").stat().st_mtime_ns
    assert run(groups, w, quiet=True) == 0
    assert (ws.results_root / "lama/gpt2/ptuning-full/P101.json").stat().st_mtime_ns == before
    assert all(cell_state(c, ws).state is State.DONE for c in groups[0].cells())
    assert "summary up to date" in format_plan(groups, ws, brief=True)
    assert not (ws.runs_root / "sweep" / "failed" / f"{p19.key}.json").exists()
    # every field the driver keys reuse on counts: another thread count would recompute, and --plan says so
    assert cell_state(p101, Workspace(**{**w, "threads": 2})).reason == "threads 1 -> 2"
    # a file written before fingerprints named their fields (the committed results): what the driver prints
    path = ws.results_root / "lama/gpt2/ptuning-full/P101.json"
    old = json.loads(path.read_text())
    del old["fingerprint_fields"]
    path.write_text(json.dumps({**old, "config_fingerprint": "0123456789abcdef"}))
    stale = cell_state(p101, ws)
    assert stale.state is State.STALE and stale.reason == "written before fingerprints named their fields"
    assert stale.wall_time_s == old["wall_time_s"]


def test_plan_of_superglue_seeds(load_tiny, tiny_dirs, shared_data, tmp_path):
    spec = {"benchmark": "superglue", "backbones": [str(tiny_dirs["gpt2"])], "methods": ["ptuning"],
            "tasks": ["cb"], "seeds": [42, 43], "config": {"max_train": 4, "max_dev": 4, "max_eval": 8,
                                                          "dtype": "float32"},
            "train": {"max_steps": 2, "batch_size": 2, "eval_every_steps": 1}}
    w = where(tmp_path, shared_data)
    ws = Workspace(**w)
    assert run(expand(parse_spec({**spec, "seeds": [42]})), w, quiet=True) == 0
    groups = expand(parse_spec(spec))
    assert [cell_state(c, ws).state for c in groups[0].cells()] == [State.DONE, State.PENDING]
    assert run(groups, w, quiet=True) == 0
    result = json.loads((ws.results_root / "superglue/fewshot/gpt2/ptuning/cb.json").read_text())
    assert list(result["seeds"]) == ["42", "43"]
    assert "1 cells: 1 done" not in format_plan(groups, ws) and "2 cells: 2 done" in format_plan(groups, ws)
    # each seed's own wall time is in the result: what --plan estimates from once the resume state is gone
    assert set(result["seed_wall_time_s"]) == {"42", "43"} and all(v > 0 for v in result["seed_wall_time_s"].values())
    # another setting (max_train) is a resume folder of other fields: stale, with the driver's one-line reason
    other = expand(parse_spec({**spec, "config": {**spec["config"], "max_train": 3}}))
    assert [cell_state(c, ws).reason for c in other[0].cells()] == ["max_train 4 -> 3"] * 2
    # the resume state gone (a fresh clone of committed results): the result holds the seeds, a rerun recomputes
    import shutil
    shutil.rmtree(ws.runs_root / "superglue")
    gone = cell_state(groups[0].cells()[0], ws)
    assert gone.state is State.STALE and "seed record is gone" in gone.reason
    assert gone.wall_time_s == result["seed_wall_time_s"]["42"]



def test_a_pattern_searching_seed_is_done_only_with_every_searched_pattern(tiny_dirs, shared_data, tmp_path):
    """Supervised P-tuning trains each seed once per searched pattern and keeps the best on dev: a seed with only
    some patterns finished (a run stopped mid-search) is not done, so the sweep resumes it (it counted as done
    once any one pattern had finished)."""
    spec = {"benchmark": "superglue", "backbones": [str(tiny_dirs["gpt2"])], "methods": ["ptuning"],
            "settings": ["supervised"], "tasks": ["cb"], "seeds": [42],
            "config": {"max_train": 4, "max_dev": 4, "max_eval": 8, "dtype": "float32"},
            "train": {"max_steps": 1, "batch_size": 2, "eval_every_steps": 1}}
    w = where(tmp_path, shared_data)
    ws = Workspace(**w)
    groups = expand(parse_spec(spec))
    assert run(groups, w, quiet=True) == 0
    (cell,) = groups[0].cells()
    assert cell_state(cell, ws).state is State.DONE
    seeds = sorted((ws.runs_root / "superglue").rglob("seed42.json"))
    assert len(seeds) == 3  # one per searched pattern (1, 2 and 4 prompt tokens)
    seeds[-1].unlink()
    state = cell_state(cell, ws)  # the result file still lists the seed: a rerun recomputes the missing pattern
    assert state.state is State.STALE and "a rerun recomputes it" in state.reason

# ------------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster of 2 CPUs whose workers carry the test instrumentation (tests/sweep_hooks.py)."""
    ray = pytest.importorskip("ray")
    files = tmp_path_factory.mktemp("ray-hooks")
    env = {"SWEEP_TEST_RUNS": str(files / "runs.txt"), "SWEEP_TEST_ARM": str(files / "arm"),
           "SWEEP_TEST_FIRED": str(files / "fired"),
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env, "worker_process_setup_hook": "sweep_hooks.install"})
    yield files
    ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tiny_dirs, shared_data, tmp_path_factory) -> dict:
    """The 6-cell sweep (3 relations x MP, P-tuning) with the local executor: what Ray must reproduce."""
    tmp = tmp_path_factory.mktemp("local-sweep")
    assert run(groups_of(lama_spec(tiny_dirs["gpt2"]), shared_data), where(tmp, shared_data), quiet=True) == 0
    return lama_numbers(tmp / "results")


def test_ray_gives_exactly_the_local_results(ray_cluster, local_results, tiny_dirs, shared_data, tmp_path):
    groups = groups_of(lama_spec(tiny_dirs["gpt2"]), shared_data)
    assert sum(len(g.cells()) for g in groups) == 6
    assert run(groups, where(tmp_path / "ray", shared_data), engine="ray", quiet=True) == 0
    ray_results = lama_numbers(tmp_path / "ray" / "results")
    assert len(local_results) == 8 and ray_results == local_results  # 6 relation files and 2 summaries
    assert all(r.get("p_at_1") is not None for r in local_results.values() if "relation" in r)
    logs = sorted((tmp_path / "ray" / "runs" / "sweep" / "logs").rglob("*.log"))
    assert len(logs) == 8 and all("== done in" in p.read_text() for p in logs)


def test_a_worker_killed_mid_sweep_loses_nothing(ray_cluster, local_results, tiny_dirs, shared_data, tmp_path):
    runs_log = ray_cluster / "runs.txt"
    runs_log.unlink(missing_ok=True)
    (ray_cluster / "arm").write_text("P1376")  # the P-tuning cell of P1376 dies after its first checkpoint
    groups = groups_of(lama_spec(tiny_dirs["gpt2"]), shared_data)
    try:
        assert run(groups, where(tmp_path / "ray", shared_data), engine="ray", quiet=True) == 0
    finally:
        (ray_cluster / "arm").unlink()
    assert (ray_cluster / "fired").exists()
    lines = runs_log.read_text().splitlines()
    cells = [line for line in lines if "," not in line.split()[1]]  # not the two assemblies
    assert sorted(cells) == sorted([f"mp {r}" for r in RELATIONS] + [f"ptuning {r}" for r in RELATIONS]
                                   + ["ptuning P1376 resumed"])
    assert lama_numbers(tmp_path / "ray" / "results") == local_results
