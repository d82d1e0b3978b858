"""MultiRC evaluation on a causal LM: every passage run once (`repro.shared_prefix`) against every input in full.

MultiRC's dev set repeats each of its 83 passages in every answer option of every question about it (4,848
inputs of ~250 tokens). Both variants score the same MultiRC dev inputs with the MP scorer of the `cpu` preset
(bf16, PET's pattern, 256 tokens): `plain` is `repro.core.inference.argmax_candidates` (length buckets, head over
the two verbalizer ids), `shared` is `repro.shared_prefix.candidate_scores` (a group's common start once into a
key/value cache, each input's rest fed on a copy). Printed: process CPU seconds and wall seconds of each, tokens
the LM ran, FLOPs (`machine.ModelShape`; a rest's attention over its cached start counted), GFLOP/s against the
bf16 GEMM peak measured in the same run, and how many predictions agree (bf16 rounds a cached attention
differently from a full one; in fp32 they are equal: tests/test_shared_prefix.py).

    .venv/bin/python benchmarks/multirc_prefix.py [--examples 600] [--threads 1]

Writes benchmarks/results/multirc_prefix.json and .txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import ModelShape, cpu_model, matmul_peak_gflops, rate_line, write_report  # noqa: E402
from repro import shared_prefix  # noqa: E402
from repro.core.backbone import load_backbone  # noqa: E402
from repro.core.inference import argmax_candidates  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.experiment.engine import build_scorer  # noqa: E402
from repro.experiment.superglue import RunPlan  # noqa: E402
from repro.experiment.superglue_config import SuperGLUEConfig  # noqa: E402
from repro.methods import get_method  # noqa: E402
from repro.tasks.registry import get_task  # noqa: E402


def shared_flops(shape: ModelShape, rendered, groups) -> tuple[float, int]:
    """FLOPs and tokens of the shared variant: each group's start once, each rest with attention over its start."""
    flops, tokens = 0.0, 0
    for group in groups:
        lengths = [len(rendered[i].input_ids) - group.cut for i in group.members]
        if group.cut:
            flops += shape.forward_flops([group.cut])
            tokens += group.cut
        flops += shape.forward_flops(lengths, head_ids_read=2 * len(lengths))
        flops += sum(4 * shape.layers * shape.hidden * n * group.cut for n in lengths)
        tokens += sum(lengths)
    return flops, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=600, help="MultiRC dev inputs (answer options), in file order")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multirc_prefix.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task("multirc")
    config = SuperGLUEConfig(task="multirc", method="mp", preset="cpu", backbone=args.backbone)
    plan = RunPlan(config, task, [task], get_method("mp", "superglue"), None, [42])
    backbone = load_backbone(args.backbone, dtype="bfloat16")
    scorer = build_scorer(task, plan.method, backbone, plan.template("pet"), "pet", config, 42, max_length=256,
                          quiet=True)
    inner = getattr(scorer, "inner", scorer)
    examples = task.read(data_root(args.data_root) / "superglue/MultiRC/val.jsonl")[: args.examples]
    rendered = inner.eval_inputs(examples)
    model, ids = inner.model.eval(), inner.candidate_ids
    shape = ModelShape.of(model.lm)
    groups = shared_prefix.shared_groups(rendered)
    lengths = [len(r.input_ids) for r in rendered]
    work = {"plain": (shape.forward_flops(lengths, head_ids_read=2 * len(lengths)), sum(lengths)),
            "shared": shared_flops(shape, rendered, groups)}
    runs = {"plain": lambda: argmax_candidates(model, rendered, ids, batch_size=32, quiet=True),
            "shared": lambda: shared_prefix.candidate_scores(model, rendered, ids, batch_size=32, quiet=True).argmax(-1)}
    peak_before = matmul_peak_gflops(torch.bfloat16)
    out, report = {}, {"cpu": cpu_model(), "threads": torch.get_num_threads(), "backbone": args.backbone,
                       "examples": len(rendered), "groups": len(groups),
                       "groups_shared": sum(1 for g in groups if g.cut), "variants": {}}
    for name, run in runs.items():
        wall, cpu = time.perf_counter(), time.process_time()
        out[name] = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        flops, tokens = work[name]
        report["variants"][name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "tokens": tokens,
                                    "gflop": round(flops / 1e9, 1), "gflops_per_s": round(flops / wall / 1e9, 1)}
    peak = (peak_before + matmul_peak_gflops(torch.bfloat16)) / 2
    report["bf16_peak_gflops"] = round(peak, 1)
    report["agree"] = round(float((out["plain"] == out["shared"]).float().mean()), 4)
    plain, shared = report["variants"]["plain"], report["variants"]["shared"]
    report["speedup_wall"] = round(plain["wall_s"] / shared["wall_s"], 2)
    report["speedup_cpu"] = round(plain["cpu_s"] / shared["cpu_s"], 2)
    lines = [f"MultiRC MP evaluation, {args.backbone}, bf16, {len(rendered)} dev inputs in {len(groups)} groups "
             f"({report['groups_shared']} sharing a start); {report['cpu']}, {report['threads']} thread(s)"]
    for name, v in report["variants"].items():
        lines.append(f"  {name}: {v['wall_s']} s wall, {v['cpu_s']} CPU s, {v['tokens']} tokens, {v['gflop']} GFLOP; "
                     + rate_line("rate", v["gflop"] * 1e9, v["wall_s"], peak))
    lines.append(f"  shared vs plain: {report['speedup_wall']}x wall, {report['speedup_cpu']}x CPU time, "
                 f"{plain['tokens'] / shared['tokens']:.1f}x fewer tokens; predictions agree on "
                 f"{100 * report['agree']:.1f}%")
    write_report(args.out, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
