"""A few-shot training step in one padded pass against the same batch cut by length (`--max-batch-tokens`).

A batch of 8 FewGLUE examples is padded to its longest input: RTE's inputs run from ~20 to ~250 tokens, so a
batch pads to about twice the tokens it holds (CB 1.7x, WiC 1.4x, COPA 1.2x). `training.length_parts` sorts the
batch by length and computes it in passes of at most N padded tokens, each pass's mean loss weighted by its share,
so the gradient is the batch's up to rounding. Both variants run `training._backward` (forward and backward, as
the trainer does) on the same batches of the `cpu` preset's P-tuning (LM and encoder trained, bf16 autocast over
fp32 weights) in the same process, alternating which goes first. Printed: padded tokens per variant, seconds per
step, the ratio, GFLOP/s of the useful work (real tokens, LM trained: 3x a forward) against the bf16 GEMM peak
measured in the same run, and the relative difference of the two gradients.

    .venv/bin/python benchmarks/length_parts.py [--task rte] [--max-tokens 512] [--batches 8] [--threads 1]

Writes benchmarks/results/length_parts-<task>.json and .txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import ModelShape, cpu_model, matmul_peak_gflops, rate_line, write_report  # noqa: E402
from repro.core.backbone import load_backbone  # noqa: E402
from repro.core.training import _backward, epoch_batches, length_parts  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.experiment.engine import build_scorer, item_length, loss_weight  # noqa: E402
from repro.experiment.superglue import RunPlan, default_pattern  # noqa: E402
from repro.experiment.superglue_config import SuperGLUEConfig  # noqa: E402
from repro.methods import get_method  # noqa: E402
from repro.tasks.registry import get_task, trainable_task_names  # noqa: E402


def step_seconds(scorer, params, batch, parts) -> tuple[float, list[torch.Tensor]]:
    """Wall seconds of one forward and backward of `batch`, and the gradients it left."""
    scorer.model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    _backward(batch, scorer.loss, loss_weight, params, parts)
    return time.perf_counter() - start, [p.grad.detach().clone() for p in params]


def padded_tokens(batch, parts) -> int:
    """Tokens the LM runs for `batch` cut into `parts` (each part padded to its widest item)."""
    return sum(len(part) * max(item_length(it) for it in part) for part in parts(batch))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--task", default="rte", choices=trainable_task_names())
    parser.add_argument("--method", default="ptuning")
    parser.add_argument("--max-tokens", type=int, default=512, help="padded tokens per pass of the cut variant")
    parser.add_argument("--batches", type=int, default=8, help="training batches timed (the epochs' order)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    config = SuperGLUEConfig(task=args.task, method=args.method, preset="cpu", backbone=args.backbone)
    method = get_method(args.method, "superglue")
    backbone = load_backbone(args.backbone)
    plan = RunPlan(config, task, [task], method, backbone, [42])
    pattern = default_pattern(plan)
    scorer = build_scorer(task, method, backbone, plan.template(pattern), pattern, config, 42,
                          max_length=config.max_length, quiet=True)
    examples = task.read(data_root(args.data_root) / task.files().train("fewshot"))
    items = scorer.train_items(examples)
    order = [b for epoch in range(8) for b in epoch_batches(len(items), config.train, epoch, 42)
             if len(b) == config.train.batch_size][: args.batches]
    batches = [[items[i] for i in b] for b in order]
    params = [p for ps in scorer.model.trainable_parameters().values() for p in ps]
    variants = {"one pass": lambda batch: [batch],
                "cut": lambda batch: length_parts(batch, item_length, args.max_tokens)}
    shape = ModelShape.of(scorer.model.lm)
    scorer.model.train()
    step_seconds(scorer, params, batches[0], variants["one pass"])  # warm-up: allocations, kernel selection
    load_before = os.getloadavg()[0]  # other processes on the cores: the ratio holds, the rates do not
    peak_before = matmul_peak_gflops(torch.bfloat16)
    times = {name: [] for name in variants}
    drift = []
    for k, batch in enumerate(batches):
        names = list(variants) if k % 2 == 0 else list(reversed(variants))
        grads = {}
        for name in names:
            seconds, grads[name] = step_seconds(scorer, params, batch, variants[name])
            times[name].append(seconds)
        num = sum(float((a - b).float().norm()) ** 2 for a, b in zip(grads["cut"], grads["one pass"])) ** 0.5
        den = sum(float(b.float().norm()) ** 2 for b in grads["one pass"]) ** 0.5
        drift.append(num / den)
    peak = (peak_before + matmul_peak_gflops(torch.bfloat16)) / 2
    real = [sum(item_length(it) for it in b) for b in batches]
    useful = 3 * sum(shape.forward_flops([item_length(it) for it in b]) for b in batches)
    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "backbone": args.backbone, "task": args.task,
              "method": args.method, "batch_size": config.train.batch_size, "batches": len(batches),
              "max_tokens": args.max_tokens, "real_tokens": sum(real), "bf16_peak_gflops": round(peak, 1),
              "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
              "gradient_relative_difference_max": float(f"{max(drift):.2g}"), "variants": {}}
    lines = [f"{args.task} few-shot {args.method} training steps, {args.backbone}, cpu preset (bf16 autocast), "
             f"batch {config.train.batch_size}, {len(batches)} batches; {report['cpu']}, {report['threads']} "
             f"thread(s), load average {load_before:.1f} before"]
    for name, parts in variants.items():
        padded = sum(padded_tokens(b, parts) for b in batches)
        total = sum(times[name])
        report["variants"][name] = {"padded_tokens": padded, "s_per_step": round(statistics.mean(times[name]), 3),
                                    "passes": sum(len(parts(b)) for b in batches),
                                    "useful_gflops_per_s": round(useful / total / 1e9, 1)}
        lines.append(f"  {name}: {padded} padded tokens for {sum(real)} real ({padded / sum(real):.2f}x), "
                     f"{report['variants'][name]['passes']} passes, {statistics.mean(times[name]):.2f} s/step; "
                     + rate_line("useful work", useful, total, peak))
    ratio = sum(times["one pass"]) / sum(times["cut"])
    report["speedup"] = round(ratio, 2)
    lines.append(f"  cut at {args.max_tokens} tokens vs one pass: {ratio:.2f}x; gradients differ by at most "
                 f"{max(drift):.1e} of their norm (bf16 autocast sums in another order)")
    write_report(args.out or ROOT / "benchmarks" / "results" / f"length_parts-{args.task}.json", report,
                 "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
