"""LAMA P-tuning: all relations trained jointly on one frozen LM against one relation at a time.

Both variants run the `cpu` preset's schedule on the same relations (default: 8) and the same facts: per
relation 32 steps of 16 training facts, dev P@1 on 64 facts every 16 steps, best-dev state restored, then test
P@1. `separate` is the per-relation loop (`engine.build_scorer` + `engine.fit`, what `--sequential` runs);
`joint` is `repro.experiment.joint` (one forward/backward per step over every relation's batch). Each variant
runs in its own subprocess, which reports its training throughput (training facts per second, dev evaluations
included), the achieved GFLOP/s (FLOPs counted from the sequences the LM actually ran: forward, plus the
input-gradient backward ~ one more forward for training rows; the LM head where read), and its peak resident
memory after loading the backbone (Linux `/proc/self/clear_refs`). The main process measures the matmul peak
in the run's dtype (`--dtype`, default the preset's bf16) on the same threads, so every rate is also a fraction of
what this machine can do.

    .venv/bin/python benchmarks/lama_joint.py [--relations P17,P19,...] [--threads 1]

Writes benchmarks/results/lama_joint.json and .txt. Test P@1 of both variants is printed: bf16 batches of
different shapes round differently, so the two agree within sampling noise, not to the digit (in fp32 they are
equal; tests/test_joint.py checks that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import (  # noqa: E402
    ModelShape, cpu_model, matmul_peak_gflops, peak_rss_mib, rate_line, reset_peak_rss, write_report,
)
from repro.core.backbone import load_backbone  # noqa: E402
from repro.core.model import PromptedLM  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.experiment import engine  # noqa: E402
from repro.experiment.joint import Member, build_joint, fit_together, predict_together  # noqa: E402
from repro.experiment.lama import LamaConfig, RelationUnit  # noqa: E402
from repro.tasks import lama as lama_data  # noqa: E402

DEFAULT_RELATIONS = "P17,P19,P20,P27,P36,P101,P103,P1412"
VARIANTS = ("separate", "joint")


class FlopCounter:
    """Counts the FLOPs of every forward of the prompted LM (patched in): sequences at their true lengths, the
    LM head over the full vocabulary for training rows (the loss) and over the allowed ids for evaluation rows;
    training rows count twice (the frozen LM's input-gradient backward costs about one forward)."""

    def __init__(self, shape: ModelShape, vocab_size: int, allowed: int) -> None:
        self.shape, self.vocab_size, self.allowed = shape, vocab_size, allowed
        self.phase = "train"  # "train": training steps and dev evaluations; "test": test P@1
        self.flops = {"train": 0.0, "test": 0.0}
        self.rows = {"train": 0, "dev": 0, "test": 0}

    def install(self) -> None:
        original = PromptedLM.target_hidden
        counter = self

        def counted(model, batch):
            lengths = batch.attention_mask.sum(dim=1).tolist()
            training = torch.is_grad_enabled()
            head = len(lengths) * (counter.vocab_size if training else counter.allowed)
            counter.flops[counter.phase] += counter.shape.forward_flops(lengths, head) * (2 if training else 1)
            counter.rows["train" if training else ("dev" if counter.phase == "train" else "test")] += len(lengths)
            return original(model, batch)

        PromptedLM.target_hidden = counted


def run_variant(name: str, args) -> dict:
    """Train and test every relation one way, in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    relations = lama_data.get_relations(root, args.relations.split(","))
    config = LamaConfig(method="ptuning", backbone=args.backbone, preset="cpu", relations=[r.id for r in relations],
                        dtype=args.dtype)
    method = config.method_entry
    vocab = lama_data.allowed_vocab(root, config.vocab, backbone.tokenizer, space_before=True,
                                    tokenizer_key=lama_data.matching_vocab_key(root, config.vocab, backbone.tokenizer))
    units = [RelationUnit(r, method, backbone, vocab, root, config, Path("/nonexistent"), True, {})
             for r in relations]
    data = [u.train_dev() for u in units]
    tests = [u.examples("test")[0][: args.max_test] for u in units]
    counter = FlopCounter(ModelShape.of(backbone.model), int(backbone.model.config.vocab_size), len(vocab))
    counter.install()
    reset_peak_rss()

    train_s = test_s = train_cpu = test_cpu = 0.0  # wall and process CPU seconds (CPU: robust to other jobs)
    fitted, predicted = [], []
    if name == "separate":
        for unit, d, test in zip(units, data, tests):
            start, start_cpu = time.perf_counter(), time.process_time()
            scorer = engine.build_scorer(unit.task(), method, backbone, unit.template(), "ptuning", config, config.seed,
                                         max_length=None, quiet=True)
            fitted.append(engine.fit(scorer, unit.task(), d.train, d.dev, config.train, config.seed,
                                     checkpoint_dir=None, desc=unit.relation.id, quiet=True))
            middle, middle_cpu = time.perf_counter(), time.process_time()
            counter.phase = "test"
            predicted.append(scorer.predict(test))
            counter.phase = "train"
            train_s, train_cpu = train_s + middle - start, train_cpu + middle_cpu - start_cpu
            test_s, test_cpu = test_s + time.perf_counter() - middle, test_cpu + time.process_time() - middle_cpu
    else:
        start, start_cpu = time.perf_counter(), time.process_time()
        members = [Member(u.relation.id, u.task(), u.template(), "ptuning", config.seed) for u in units]
        joint = build_joint(members, method, backbone, config, max_length=None, quiet=True)
        fitted = fit_together(joint, members, [d.train for d in data], [d.dev for d in data], config.train,
                              checkpoint_dir=None, quiet=True)
        middle, middle_cpu = time.perf_counter(), time.process_time()
        counter.phase = "test"
        predicted = predict_together(joint.scorers, tests)
        train_s, test_s = middle - start, time.perf_counter() - middle
        train_cpu, test_cpu = middle_cpu - start_cpu, time.process_time() - middle_cpu
    p_at_1 = {u.relation.id: u.task().score(test, p)["p_at_1"] for u, test, p in zip(units, tests, predicted)}
    train_facts = sum(f["steps"] for f in fitted) * config.train.batch_size
    return {
        "train_s": train_s, "test_s": test_s, "train_cpu_s": train_cpu, "test_cpu_s": test_cpu,
        "train_facts": train_facts,
        "train_facts_per_s": train_facts / train_s, "test_facts": sum(map(len, tests)),
        "test_facts_per_s": sum(map(len, tests)) / test_s, "flops": counter.flops, "rows": counter.rows,
        "p_at_1": p_at_1, "macro_p_at_1": sum(p_at_1.values()) / len(p_at_1),
        "best_steps": {u.relation.id: f["best_step"] for u, f in zip(units, fitted)},
        "threads": torch.get_num_threads(), "peak_rss_mib": peak_rss_mib(),
    }


def in_subprocess(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--variant", name, "--relations", args.relations, "--backbone", args.backbone,
           "--threads", str(args.threads), "--max-test", str(args.max_test), "--dtype", args.dtype]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"variant {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--relations", default=DEFAULT_RELATIONS)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-test", type=int, default=300, help="test facts per relation (P@1)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--dtype", default="", choices=("", "float32", "bfloat16"),
                        help="the frozen LM's dtype (default: the cpu preset's, bfloat16)")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lama_joint.json"))
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    dtype = args.dtype or "bfloat16"
    peak = matmul_peak_gflops(getattr(torch, dtype))
    results = {name: in_subprocess(name, args) for name in VARIANTS}
    peak_after = matmul_peak_gflops(getattr(torch, dtype))
    report = {
        "backbone": args.backbone, "relations": args.relations.split(","), "preset": "cpu",
        "dtype": dtype,
        "cpu": cpu_model(), "threads": results["joint"]["threads"],
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "matmul_peak_gflops": {"before": peak, "after": peak_after},  # in the run's dtype
        "variants": results,
        "speedup_train": results["separate"]["train_s"] / results["joint"]["train_s"],
        "speedup_test": results["separate"]["test_s"] / results["joint"]["test_s"],
        "speedup_train_cpu": results["separate"]["train_cpu_s"] / results["joint"]["train_cpu_s"],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_report(args.out, report, format_report(report))
    return 0


def format_report(report: dict) -> str:
    peak = max(report["matmul_peak_gflops"].values())
    rel = report["relations"]
    lines = [f"LAMA P-tuning, {report['backbone']} {report['dtype']}, cpu preset, {len(rel)} relations ({','.join(rel)}); "
             f"{report['cpu']}, {report['threads']} threads, load average {report['load_average_before']:.1f} -> "
             f"{report['load_average_after']:.1f}",
             f"{'variant':<10}{'train s':>9}{'facts/s':>9}{'x':>6}{'test s':>8}{'facts/s':>9}{'peak MiB':>10}"
             f"{'P@1':>7}"]
    base = report["variants"]["separate"]
    for name, r in report["variants"].items():
        lines.append(f"{name:<10}{r['train_s']:>9.1f}{r['train_facts_per_s']:>9.1f}"
                     f"{base['train_s'] / r['train_s']:>6.2f}{r['test_s']:>8.1f}{r['test_facts_per_s']:>9.1f}"
                     f"{r['peak_rss_mib']:>10.0f}{r['macro_p_at_1']:>7.2f}")
    lines.append("")
    for name, r in report["variants"].items():
        lines.append(rate_line(f"{name} training (dev evaluations included)", r["flops"]["train"], r["train_s"], peak))
        lines.append(rate_line(f"{name} test", r["flops"]["test"], r["test_s"], peak))
    lines.append(f"training speed-up: {report['speedup_train']:.2f}x wall, {report['speedup_train_cpu']:.2f}x process "
                 f"CPU time ({base['train_cpu_s']:.0f} s -> {report['variants']['joint']['train_cpu_s']:.0f} s)")
    lines.append(f"{report['dtype']} matmul peak measured before/after: {report['matmul_peak_gflops']['before']:.0f} / "
                 f"{report['matmul_peak_gflops']['after']:.0f} GFLOP/s")
    lines.append("")
    lines.append(f"{'relation':<10}" + "".join(f"{n:>10}" for n in report["variants"]) + f"{'best step':>12}")
    for rid in rel:
        cells = "".join(f"{report['variants'][n]['p_at_1'][rid]:>10.2f}" for n in report["variants"])
        steps = "/".join(str(report["variants"][n]["best_steps"][rid]) for n in report["variants"])
        lines.append(f"{rid:<10}{cells}{steps:>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
