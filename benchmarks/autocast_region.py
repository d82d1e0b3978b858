"""Does a fine-tuned LM pay for casting its weights again in every autocast region? (issue 11's ReCoRD lead)

A trained LM keeps float32 master weights and runs its forwards under bf16 autocast (`PromptedLM.precision`).
Autocast caches a weight's bf16 copy only until its outermost region exits, and a causal LM's candidate scoring
(ReCoRD, COPA: `inference._causal_log_probs`) runs the shared prefix and each chunk of continuations in regions
of their own, so a training loss casts every weight once per forward. One region around the whole loss (or the
whole evaluation) casts once. The forward's numbers stay the same (the same casts); the gradients do not quite:
the uses of one cached copy add their gradients in bf16 before the float32 accumulation.

Per task (the `cpu` preset's few-shot P-tuning scorer on smollm2-135m, seed 42, LM trained in bf16): a training
loss over the first `--items` training items with its backward, and the prediction of the first `--examples`
evaluation examples, each `plain` (as the engine runs it) and `outer` (inside one `model.precision()` region),
alternating, the first round dropped (warm-up). Reports medians, their ratio, the losses, the relative
difference of the two gradients and whether the predictions agree.

    .venv/bin/python benchmarks/autocast_region.py --task record [--items 3] [--examples 16] [--rounds 6]
        [--threads 1] [--data-root DIR]

Writes benchmarks/results/autocast_region-<task>.json and .txt.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import write_report  # noqa: E402
from repro.core.backbone import Backbone, load_backbone  # noqa: E402
from repro.core.training import training_kernels  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.experiment import engine  # noqa: E402
from repro.experiment.superglue import default_variant, eval_file as eval_file_of  # noqa: E402
from repro.experiment.superglue_config import SuperGLUEConfig  # noqa: E402
from repro.methods import get_method  # noqa: E402
from repro.results import cpu_model, git_commit  # noqa: E402
from repro.tasks.registry import get_task  # noqa: E402

VARIANTS = ("plain", "outer")


def build(backbone_name: str, task_name: str, method_name: str = "ptuning",
          backbone: Optional[Backbone] = None) -> tuple[Any, Any]:
    """The scorer a few-shot seed 42 of the `cpu` preset trains (fresh encoder, LM trained)."""
    backbone = backbone or load_backbone(backbone_name)
    task = get_task(task_name)
    config = SuperGLUEConfig(task=task_name, method=method_name, setting="fewshot", preset="cpu")
    method = get_method(method_name, "superglue")
    variant = default_variant(task, method.style.value, causal=backbone.is_causal)
    template = task.template(method.style.value, variant)
    return engine.build_scorer(task, method, backbone, template, variant, config, 42, max_length=config.max_length,
                               quiet=True), task


def region(model, variant: str) -> ContextManager:
    """The engine's own regions (`plain`), or one more around them all (`outer`)."""
    return model.precision() if variant == "outer" else contextlib.nullcontext()


def training_loss(scorer, items: list, variant: str) -> tuple[float, torch.Tensor]:
    """One loss and backward; the loss and the flattened gradient of every trainable parameter."""
    model = scorer.model
    params = [p for group in model.trainable_parameters().values() for p in group]
    for p in params:
        p.grad = None
    model.train()
    torch.manual_seed(0)  # the same dropout masks in both variants
    with training_kernels(model.device):
        with region(model, variant):
            loss = scorer.loss(items)
        loss.backward()
    grad = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    return loss.item(), grad


def alternate(rounds: int, run: Callable[[str], Any]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall seconds of `run(variant)` per variant over `rounds` alternating rounds (the first dropped) and each
    variant's first output."""
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    first: dict[str, Any] = {}
    for r in range(rounds + 1):
        for variant in VARIANTS:
            start = time.perf_counter()
            out = run(variant)
            if r:
                seconds[variant].append(time.perf_counter() - start)
            first.setdefault(variant, out)
    return seconds, first


def measure(scorer, task, root: Path, items: int, examples: int, rounds: int) -> dict[str, Any]:
    train_file = root / task.files().train("fewshot")
    eval_file = root / eval_file_of(task, root)  # the engine's choice (ReCoRD: its dev32, the dev set is missing)
    train_items = scorer.train_items(task.read(train_file))[:items]
    eval_examples = task.read(eval_file)[:examples]
    train_s, trained = alternate(rounds, lambda v: training_loss(scorer, train_items, v))

    def predict(variant: str) -> list:
        with region(scorer.model, variant):
            return scorer.predict(eval_examples)

    eval_s, predicted = alternate(rounds, predict)
    (loss_plain, grad_plain), (loss_outer, grad_outer) = trained["plain"], trained["outer"]
    medians = {part: {v: statistics.median(s[v]) for v in VARIANTS} for part, s in (("train", train_s),
                                                                                    ("eval", eval_s))}
    return {
        "train_items": len(train_items), "eval_examples": len(eval_examples), "eval_file": eval_file.name,
        "seconds": {"train": train_s, "eval": eval_s}, "medians": medians,
        "speedup": {part: m["plain"] / m["outer"] for part, m in medians.items()},
        "loss": {"plain": loss_plain, "outer": loss_outer},
        "relative_grad_difference": float((grad_plain - grad_outer).norm() / grad_plain.norm()),
        "same_predictions": predicted["plain"] == predicted["outer"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="record")
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=3, help="training items in the loss (ReCoRD's cpu batch: 3)")
    parser.add_argument("--examples", type=int, default=16, help="evaluation examples predicted")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    scorer, task = build(args.backbone, args.task)
    result = measure(scorer, task, data_root(args.data_root), args.items, args.examples, args.rounds)
    report = {"task": args.task, "backbone": args.backbone, "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "commit": git_commit(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
              **result, "command": " ".join([Path(sys.executable).name, *sys.argv])}
    out = args.out or ROOT / "benchmarks" / "results" / f"autocast_region-{args.task}.json"
    write_report(out, report, format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    lines = [f"CPU: {report['cpu']}, {report['threads']} thread(s); commit {report['commit']}; load average "
             f"{report['load_average_before']:.1f} -> {report['load_average_after']:.1f}",
             f"{report['task']}, few-shot P-tuning scorer (cpu preset, LM trained in bf16 autocast), "
             f"{report['backbone']}: each autocast region casts the weights again (plain) or one region around "
             "the whole loss / evaluation (outer); medians of alternating rounds after a warm-up",
             f"{'part':<34}{'plain s':>9}{'outer s':>9}{'plain/outer':>13}"]
    parts = {"train": f"loss + backward, {report['train_items']} items",
             "eval": f"predict {report['eval_examples']} ({report['eval_file']})"}
    for part, label in parts.items():
        m = report["medians"][part]
        lines.append(f"{label:<34}{m['plain']:>9.2f}{m['outer']:>9.2f}{report['speedup'][part]:>13.3f}")
    lines += [f"loss plain {report['loss']['plain']:.6f}, outer {report['loss']['outer']:.6f}; gradients differ by "
              f"{report['relative_grad_difference']:.2e} of their norm; same predictions: {report['same_predictions']}",
              f"command: {report['command']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
