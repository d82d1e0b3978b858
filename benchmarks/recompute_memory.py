"""Memory of a fine-tuned LM's training with and without `--recompute-activations` (gradient checkpointing).

Supervised RTE with PET-FT (`mp-ft`, the `cpu` preset: bf16 autocast over fp32 master weights, batch 16, inputs of
up to 256 tokens) held up to 16.7 GB resident on SmolLM2-135M, too much to run beside a second job on a 24 GiB
machine. Both variants run the real command (`python -m repro superglue ...`) in a child process on the same
examples and steps; printed: each child's peak resident memory (`os.wait4`), the seed's wall time its result file
records, and whether the two result files hold the same numbers (recomputation replays each layer's forward, so
they must).

    .venv/bin/python benchmarks/recompute_memory.py [--task rte] [--steps 6] [--threads 1] --data-root ROOT

Writes benchmarks/results/recompute_memory.json and .txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model, write_report  # noqa: E402


def run_child(command: list[str], log: Path) -> tuple[float, float]:
    """(peak resident MiB, wall seconds) of one child process running `command` to the end, its stderr in `log`
    (a file, not a pipe, which a long log would fill while nobody reads it before the exit)."""
    start = time.perf_counter()
    with log.open("w") as stderr:
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"failed ({code}): {' '.join(command)}\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def read_result(result_file: Path) -> tuple[dict, float]:
    """What decides whether two runs computed the same (the metrics and the training record), and the seed's wall
    seconds (training and evaluation, without the process start and the model load, which the first child
    also spends warming the page cache)."""
    data = json.loads(result_file.read_text())
    return {"mean": data["mean"], "training": data["training"]}, sum(data["seed_wall_time_s"].values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--task", default="rte")
    parser.add_argument("--method", default="mp-ft")
    parser.add_argument("--steps", type=int, default=6, help="training steps of each variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recompute_memory.json"))
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    report: dict = {"cpu": cpu_model(), "backbone": args.backbone, "task": args.task, "method": args.method,
                    "steps": args.steps, "threads": args.threads, "variants": {}}
    outcomes = {}
    with tempfile.TemporaryDirectory() as scratch:
        for variant, flags in (("plain", []), ("recompute", ["--recompute-activations"])):
            results = Path(scratch) / variant  # folders of its own: the other variant's seed must not be reused
            command = [sys.executable, "-m", "repro", "superglue", "--setting", "supervised", "--task", args.task,
                       "--method", args.method, "--backbone", args.backbone, "--preset", "cpu", "--seeds", "42,",
                       "--max-steps", str(args.steps), "--eval-every", str(args.steps), "--max-dev", "16",
                       "--max-eval", "16", "--results", str(results), "--runs", str(results / "runs"),
                       "--threads", str(args.threads), "--quiet", *flags]
            if args.data_root:
                command += ["--data-root", args.data_root]
            peak_mib, wall = run_child(command, Path(scratch) / f"{variant}.log")  # this checkout's code (PYTHONPATH)
            (result_file,) = results.glob(f"superglue/supervised/*/{args.method}/{args.task}.json")
            outcomes[variant], seed_s = read_result(result_file)
            report["variants"][variant] = {"peak_rss_mib": round(peak_mib), "seed_s": round(seed_s, 1),
                                           "process_s": round(wall, 1)}
    plain, recompute = report["variants"]["plain"], report["variants"]["recompute"]
    report["memory_ratio"] = round(plain["peak_rss_mib"] / recompute["peak_rss_mib"], 2)
    report["time_ratio"] = round(recompute["seed_s"] / plain["seed_s"], 2)
    report["same_numbers"] = outcomes["plain"] == outcomes["recompute"]
    text = "\n".join([
        f"{args.backbone}, supervised {args.task} {args.method}, cpu preset, {args.steps} training steps, "
        f"{args.threads} thread(s), {report['cpu']}",
        *(f"{name:10s} peak RSS {v['peak_rss_mib']:>7,} MiB   seed (train + evaluate) {v['seed_s']:7.1f} s   "
          f"whole process {v['process_s']:7.1f} s" for name, v in report["variants"].items()),
        f"memory: {report['memory_ratio']}x less with recomputation; the seed's time x{report['time_ratio']}; "
        f"same numbers: {report['same_numbers']}",
    ])
    write_report(args.out, report, text)
    return 0 if report["same_numbers"] else 1


if __name__ == "__main__":
    sys.exit(main())
