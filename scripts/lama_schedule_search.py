"""Choose a LAMA P-tuning schedule on dev P@1 only: run each candidate (training overrides of a preset) over every
trainable relation and several seeds, and record each relation's best dev P@1 per seed.

Each candidate runs the real command (`python -m repro lama ... --results <scratch>/<name>`), so its folder is a
complete run that can be committed as it is once chosen; its test P@1 is computed but never read here. Finished
relations resume from the scratch folder (the driver's own reuse).

    .venv/bin/python scripts/lama_schedule_search.py --data-root ../shared/data \\
        --candidate "B: --lr-encoder 5e-4" --candidate "C: --lr-encoder 5e-4 --max-grad-norm 1" \\
        --seeds 34,35,36 --out results/lama/smollm2-135m/cpu_schedule_search.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro.atomic import atomic_write_text  # noqa: E402 (after the path set-up)
from repro.results import cpu_model, seed_folder  # noqa: E402

def run_candidate(name: str, flags: list[str], seed: int, args: argparse.Namespace) -> dict[str, dict]:
    """One candidate and seed through the real driver; {relation: its training record}."""
    from repro.cli import main

    folder = Path(args.scratch) / name
    argv = ["lama", "--backbone", args.backbone, "--method", "ptuning", "--vocab", args.vocab, "--preset",
            args.preset, "--seeds", f"{seed},", "--data-root", args.data_root, "--results", str(folder), "--quiet",
            *flags]
    saved, sys.argv = sys.argv, [str(ROOT / "repro" / "__main__.py"), *argv]  # the files record this command
    try:  # the command's own printout (test P@1) is not shown: the choice must not see it
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            code = main(argv)
        if code != 0:
            raise SystemExit(f"candidate {name} seed {seed} failed")
    finally:
        sys.argv = saved
    return read_run(next((folder / "lama").glob(f"*/ptuning-{args.vocab}")), seed)


def read_run(run_dir: Path, seed: int) -> dict[str, dict]:
    """{relation: its training record} of one seed of a finished run folder (the seed layout of `repro lama`)."""
    from repro.methods import recorded_encoder

    seed_dir = seed_folder(run_dir, seed)
    records = {}
    for path in sorted(seed_dir.glob("P*.json")):
        data = json.loads(path.read_text())
        if data.get("training"):
            records[path.stem] = {**data["training"], "git_commit": data.get("git_commit"),
                                  "wall_time_s": data.get("wall_time_s"), "command": data.get("command"),
                                  "train_config": data.get("config", {}).get("train", {}),
                                  "encoder": recorded_encoder(data.get("config", {}))}
    return records


def _differences(record: dict, now: dict, encoder_now: str) -> dict[str, object]:
    """The training settings (and prompt encoder) a run's files record that differ from the preset's now."""
    differs = {k: v for k, v in record["train_config"].items() if k in now and k != "seed" and now[k] != v}
    return {**differs, "encoder": record["encoder"]} if record["encoder"] != encoder_now else differs


def summarise(best: dict[str, dict[int, float]], seeds: list[int]) -> dict:
    per_seed = {s: statistics.mean(best[r][s] for r in best) for s in seeds}
    return {
        "mean_best_dev_p_at_1": round(statistics.mean(per_seed.values()), 2),
        "std_over_seeds": round(statistics.stdev(per_seed.values()), 2) if len(seeds) > 1 else 0.0,
        "per_seed": {str(s): round(v, 2) for s, v in per_seed.items()},
        "dev_zero": {str(s): sorted((r for r in best if best[r][s] == 0.0), key=lambda r: int(r[1:])) for s in seeds},
        "relations": len(best),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", action="append", default=[],
                        help='"NAME: flags of python -m repro lama" (training overrides), repeatable')
    parser.add_argument("--from-run", action="append", default=[], metavar="NAME=FOLDER",
                        help="a candidate already run in full (e.g. the committed run of the preset itself): its "
                             "relation files' dev scores are read, its test scores are not")
    parser.add_argument("--seeds", default="34,35,36")
    parser.add_argument("--chosen", default=None, help="the candidate chosen (recorded with the rule it was chosen by)")
    parser.add_argument("--rule", default=None, help="how the candidate was chosen, in one sentence")
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--vocab", default="29k")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--scratch", default=str(ROOT / "runs" / "schedule_search"))
    parser.add_argument("--out", required=True, help="JSON file of every candidate's dev scores")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from repro.experiment.lama import PRESETS  # noqa: E402 (torch: only once the arguments are good)

    preset_train = asdict(PRESETS[args.preset].train)
    preset_encoder = PRESETS[args.preset].encoder

    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    invocation = "python scripts/lama_schedule_search.py " + shlex.join(sys.argv[1:])
    for earlier in report.get("candidates", {}).values():  # files from before candidates kept their invocation
        earlier.setdefault("invocation", report.get("command", ""))
    report.update({
        "what": f"LAMA P-tuning schedule candidates on {args.backbone} ({args.preset} preset, vocab {args.vocab}), "
                "compared on each relation's best dev P@1 (64 seeded dev facts), averaged over relations, then "
                "over seeds; test P@1 not consulted",
        "command": invocation,  # the latest; each candidate keeps the invocation that recorded it
        "cpu": cpu_model(),
        "seeds": seeds,
    })
    report.update({k: v for k, v in (("chosen", args.chosen), ("rule", args.rule)) if v})
    candidates = report.setdefault("candidates", {})
    jobs = [(spec.partition("=")[0].strip(), "", spec.partition("=")[2].strip()) for spec in args.from_run]
    jobs += [(spec.partition(":")[0].strip(), spec.partition(":")[2].strip(), None) for spec in args.candidate]
    for name, flag_text, folder in jobs:
        best: dict[str, dict[int, float]] = {}
        commits, commands, seconds, differs = set(), set(), 0.0, {}
        started = time.perf_counter()
        for seed in seeds:
            records = read_run(Path(folder), seed) if folder else run_candidate(name, shlex.split(flag_text), seed, args)
            for relation, training in records.items():
                best.setdefault(relation, {})[seed] = training["best_dev_p_at_1"]
                commit = str(training["git_commit"])
                commits.add(commit[:12] + ("-dirty" if commit.endswith("-dirty") else ""))
                commands.add(training["command"])
                differs.update(_differences(training, preset_train, preset_encoder))
                seconds += training["wall_time_s"] or 0.0
        source = {"read_from": folder} if folder else {"flags": flag_text, "results": str(Path(args.scratch) / name)}
        candidates[name] = {**source, **summarise(best, seeds), "invocation": invocation,
                            "computed_at": sorted(commits),
                            "train_settings_unlike_the_preset_now": differs,
                            "commands": sorted(commands),
                            "recorded_wall_s_all_seeds": round(seconds, 1),
                            "best_dev_p_at_1": {r: {str(s): v for s, v in best[r].items()} for r in best},
                            "wall_s_this_invocation": round(time.perf_counter() - started, 1)}
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
        print(f"{name}: mean best dev P@1 {candidates[name]['mean_best_dev_p_at_1']} "
              f"(per seed {candidates[name]['per_seed']}), dev-zero {candidates[name]['dev_zero']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
