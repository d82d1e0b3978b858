"""Where one few-shot SuperGLUE seed spends its time, and how far each part is from the machine's matmul peak.

Issue 11 asks to halve `scripts/reproduce_superglue.sh --setting fewshot`. This benchmark runs one seed through
the engine (`run_superglue`, the code the command line runs, results into a temporary folder) and splits its
wall time into phases: start-up (imports, loading the backbone), training steps (with the training loop's own
snapshots and restore of the best state), dev32 checks inside training, the final evaluation (dev, and AX-b/AX-g
for RTE), and the rest (reading the data, the pristine copy of the LM's weights, scorer set-up, writing
results). A forward hook on the backbone's body counts the tokens each phase runs, as executed (padded) and real,
and so each phase's FLOPs (`machine.ModelShape`: a forward is 2 x non-embedding parameters per token plus
attention; a training forward adds its backward, 2x the forward with the LM trained, 1x with it frozen) and its
rate against the bf16 GEMM peak measured in the same process. The real tokens' FLOPs at that peak are the floor:
the same recipe cannot run faster on this machine without doing less work.

    .venv/bin/python benchmarks/fewshot_seed.py --task rte [--method ptuning] [--threads 1] [--data-root DIR]
        [--max-batch-tokens 512]

Writes benchmarks/results/fewshot_seed-<task>.json and .txt.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: they are part of every seed's cost

import argparse  # noqa: E402
import contextlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import ModelShape, cpu_model, matmul_peak_gflops, write_report  # noqa: E402
from repro.core.backbone import load_backbone  # noqa: E402
from repro.experiment import engine  # noqa: E402
from repro.experiment.superglue import run_superglue  # noqa: E402
from repro.experiment.superglue_config import SuperGLUEConfig  # noqa: E402
from repro.methods import get_method  # noqa: E402
from repro.tasks.registry import trainable_task_names  # noqa: E402

PHASES = ("start-up", "training steps", "dev32 checks", "final evaluation", "other")


class PhaseMeter:
    """Wall seconds, tokens and FLOPs per phase. `phase(name)` is a context manager; a nested phase's time is
    taken out of the enclosing one (dev checks run inside training)."""

    def __init__(self, shape: ModelShape, backward_factor: int) -> None:
        self.shape = shape
        self.backward_factor = backward_factor  # a training forward's backward, in forwards
        self.seconds: dict[str, float] = defaultdict(float)
        self.padded: dict[str, int] = defaultdict(int)
        self.real: dict[str, int] = defaultdict(int)
        self.flops: dict[str, float] = defaultdict(float)  # as executed (padded tokens)
        self.real_flops: dict[str, float] = defaultdict(float)  # of the real tokens alone
        self.stack: list[str] = ["other"]

    @contextlib.contextmanager
    def phase(self, name: str):
        self.stack.append(name)
        start = time.perf_counter()
        inner_before = sum(self.seconds.values())
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            nested = sum(self.seconds.values()) - inner_before
            self.seconds[name] += elapsed - nested
            self.stack.pop()

    def count(self, module, args, kwargs) -> None:
        """Forward pre-hook on the backbone's body: the tokens of this call and their FLOPs."""
        embeds = kwargs.get("inputs_embeds")
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = (embeds if embeds is not None else ids).shape
        rows, new = int(shape[0]), int(shape[1])
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:  # (rows, past + new): padding marked, a cached past counted
            past, real = int(mask.shape[-1]) - new, int(mask[:, -new:].sum())
        else:
            past, real = 0, rows * new
        # each new token attends to the past and, causally, to half the new block on average
        attention = 4 * self.shape.layers * self.shape.hidden * rows * new * (past + new / 2)
        flops = 2 * self.shape.non_embedding_params * rows * new + attention
        if torch.is_grad_enabled():
            flops *= 1 + self.backward_factor
        name = self.stack[-1]
        self.padded[name] += rows * new
        self.real[name] += real
        self.flops[name] += flops
        self.real_flops[name] += flops * real / (rows * new)


def instrument(meter: PhaseMeter) -> None:
    """Route the engine's training and prediction through the meter's phases (the engine calls both by their
    module names, so the patch reaches the dev checks inside `fit` as well as the final evaluation)."""
    train, predict = engine.train, engine.predict

    def timed_train(*args, **kwargs):
        with meter.phase("training steps"):
            return train(*args, **kwargs)

    def timed_predict(scorer, examples, desc):
        with meter.phase("dev32 checks" if desc == "dev" else "final evaluation"):
            return predict(scorer, examples, desc)

    engine.train, engine.predict = timed_train, timed_predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--task", default="rte", choices=trainable_task_names())
    parser.add_argument("--method", default="ptuning")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    imports_s = time.perf_counter() - STARTED
    method = get_method(args.method, "superglue")
    load_start = time.perf_counter()
    backbone = load_backbone(args.backbone)
    meter = PhaseMeter(ModelShape.of(backbone.model), backward_factor=2 if method.trains_backbone else 1)
    meter.seconds["start-up"] = imports_s + time.perf_counter() - load_start
    backbone.body().register_forward_pre_hook(meter.count, with_kwargs=True)
    instrument(meter)
    config = SuperGLUEConfig(task=args.task, method=args.method, preset="cpu", backbone=args.backbone,
                             seeds=[args.seed])
    config.train = replace(config.train, max_batch_tokens=args.max_batch_tokens)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        results = run_superglue(config, backbone=backbone, root=args.data_root, results_root=Path(out),
                                threads=args.threads, quiet=True)
        run_s = time.perf_counter() - start
    claimed = sum(s for name, s in meter.seconds.items() if name != "start-up")
    meter.seconds["other"] += run_s - claimed
    peak = matmul_peak_gflops(torch.bfloat16)
    total_s = sum(meter.seconds.values())
    real_flops = sum(meter.real_flops.values())
    floor_s = real_flops / (peak * 1e9)
    metrics = {name: r["mean"] for name, r in results.items()}
    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_model(),
              "threads": torch.get_num_threads(), "backbone": args.backbone, "task": args.task,
              "method": args.method, "seed": args.seed, "max_batch_tokens": args.max_batch_tokens,
              "bf16_peak_gflops": round(peak, 1), "seed_s": round(total_s, 1), "floor_s": round(floor_s, 1),
              "metrics": metrics, "phases": {}}
    lines = [f"{args.task} few-shot {args.method}, one seed ({args.seed}), {args.backbone}, cpu preset"
             + (f", --max-batch-tokens {args.max_batch_tokens}" if args.max_batch_tokens else "")
             + f"; {report['cpu']}, {report['threads']} thread(s); bf16 GEMM peak {peak:.0f} GFLOP/s",
             f"  {'phase':<17} {'s':>7} {'share':>6} {'padded tok':>11} {'real tok':>9} {'GFLOP':>8} "
             f"{'GFLOP/s':>8} {'of peak':>7}"]
    for name in PHASES:
        seconds = meter.seconds.get(name, 0.0)
        gflop = meter.flops.get(name, 0.0) / 1e9
        rate = gflop / seconds if seconds > 0 else 0.0
        report["phases"][name] = {"s": round(seconds, 1), "padded_tokens": meter.padded.get(name, 0),
                                  "real_tokens": meter.real.get(name, 0), "gflop": round(gflop, 1),
                                  "gflops_per_s": round(rate, 1)}
        lines.append(f"  {name:<17} {seconds:7.1f} {100 * seconds / total_s:5.0f}% {meter.padded.get(name, 0):11d} "
                     f"{meter.real.get(name, 0):9d} {gflop:8.0f} {rate:8.0f} {100 * rate / peak:6.0f}%")
    lines.append(f"  seed {total_s:.0f} s; its real tokens' {real_flops / 1e12:.1f} TFLOP at the measured peak take "
                 f"{floor_s:.0f} s (the floor): the seed runs at {100 * floor_s / total_s:.0f}% of it; {metrics}")
    write_report(args.out or ROOT / "benchmarks" / "results" / f"fewshot_seed-{args.task}.json", report,
                 "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
