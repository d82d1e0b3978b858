"""The few-shot script's P-tuning time per task, a rerun against the first committed run (issue 11: "halve it").

Reads the result files a rerun of `bash scripts/reproduce_superglue.sh --setting fewshot --methods ptuning ...`
wrote (`--rerun DIR`, the folder given as --results) and the same tasks' files as first committed (`--before
COMMIT`, read with `git show`), and tables, per task, the command's wall time (`wall_time_s`), the seeds' wall
times and the metrics with their seed spread, side by side. No run happens here: the numbers are the result
files'. AX-b and AX-g come with RTE's run and are not counted again. A command that resumed seeds finished
earlier records only its own time, and the first run's files predate `seed_wall_time_s`, so a task's first-run
time can fall short of its seeds' cost (BoolQ's: see the note printed under the table).

    .venv/bin/python benchmarks/fewshot_script_time.py --rerun DIR [--before 46c48c9] [--backbone smollm2-135m]

Writes benchmarks/results/superglue_fewshot_time.json and .txt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import write_report  # noqa: E402

DIAGNOSTICS = ("axb", "axg")  # written by RTE's run, same wall time


def committed(commit: str, path: str) -> dict:
    """A result file as committed at `commit`."""
    text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(text.stdout)


def summary(result: dict) -> dict:
    """What the table shows of one result file."""
    return {"wall_time_s": round(result["wall_time_s"], 1), "seed_wall_time_s": result.get("seed_wall_time_s"),
            "mean": {k: round(v, 2) for k, v in result["mean"].items()},
            "std": {k: round(v, 2) for k, v in result["std"].items()}, "n_eval": result["n_eval"],
            "git_commit": result.get("git_commit"), "cpu_model": result.get("cpu_model"),
            "command": result.get("command")}


def metric_text(s: dict) -> str:
    return ", ".join(f"{k} {v:.1f} ± {s['std'][k]:.1f}" for k, v in s["mean"].items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", required=True, help="the --results folder of the rerun")
    parser.add_argument("--before", default="46c48c9", help="commit of the first run's result files")
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "superglue_fewshot_time.json"))
    args = parser.parse_args()
    rel = Path("superglue") / "fewshot" / args.backbone / "ptuning"
    files = sorted(p for p in (Path(args.rerun) / rel).glob("*.json") if p.stem not in DIAGNOSTICS)
    if not files:
        raise SystemExit(f"no result files under {Path(args.rerun) / rel}")
    tasks = {}
    for path in files:
        after = summary(json.loads(path.read_text()))
        before = summary(committed(args.before, f"results/{rel}/{path.name}"))
        tasks[path.stem] = {"before": before, "rerun": after,
                            "speedup": round(before["wall_time_s"] / after["wall_time_s"], 2)}
    before_s = sum(t["before"]["wall_time_s"] for t in tasks.values())
    after_s = sum(t["rerun"]["wall_time_s"] for t in tasks.values())
    first = next(iter(tasks.values()))["rerun"]
    report = {"what": __doc__.splitlines()[0], "before_commit": args.before, "rerun_commit": first["git_commit"],
              "rerun_cpu": first["cpu_model"], "rerun_command_first_task": first["command"],
              "total_before_s": round(before_s), "total_rerun_s": round(after_s),
              "speedup": round(before_s / after_s, 2), "tasks": tasks}
    lines = [f"Few-shot P-tuning, {args.backbone}, per task: first run (results at {args.before}) against the rerun "
             f"(commit {str(first['git_commit'])[:7]}, {first['cpu_model']}); wall time of the whole command"]
    for name, t in tasks.items():
        lines.append(f"  {name:<8} {t['before']['wall_time_s']:6.0f} s -> {t['rerun']['wall_time_s']:6.0f} s "
                     f"({t['speedup']:.2f}x)   {metric_text(t['before'])}  ->  {metric_text(t['rerun'])}")
    lines.append(f"  all      {before_s:6.0f} s -> {after_s:6.0f} s ({before_s / after_s:.2f}x)")
    lines.append("  (wall_time_s is the command's own time: a first-run command that resumed finished seeds records "
                 "less than its seeds cost; the first run's files have no per-seed times to tell)")
    write_report(args.out, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
