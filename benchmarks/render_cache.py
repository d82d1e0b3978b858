"""Rendering time saved by the render cache (`repro.experiment.renders`): the first run against a cached run, as
ratios measured in the same process (these machines are noisy).

Workloads, each the evaluation inputs a run renders (`scorer.eval_inputs`, what MP's evaluation asks for):
- LAMA: all 41 relations' kept test facts (29k vocabulary, manual prompts), one scorer per relation;
- BoolQ and MultiRC dev (SuperGLUE val.jsonl, 3,270 questions and 4,848 answer options), MP's pattern for a
  causal LM, inputs of 256 tokens (the cpu preset's).
Three variants per workload, scorers built before the clock starts: `plain` (the cache off,
REPRO_RENDER_CACHE=0: rendering as before the cache existed), `first` (an empty cache directory: rendering plus
writing the Dataset.map cache file), `cached` (the next run: the cache file read back). The renderings each
variant makes are counted (`Template.render_uncached`): the cached run makes none. Every variant's inputs
equal `plain`'s (checked). Also timed: reading the data files (the json builder's first read against its
cached Arrow files).

    .venv/bin/python benchmarks/render_cache.py     # prints the table, writes benchmarks/results/render_cache.json/.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import write_report  # noqa: E402
from repro.core.backbone import load_backbone  # noqa: E402
from repro.core.template import Template  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.experiment import renders  # noqa: E402
from repro.experiment.engine import build_scorer  # noqa: E402
from repro.experiment.lama import LamaConfig, method_template  # noqa: E402
from repro.experiment.superglue_config import SuperGLUEConfig  # noqa: E402
from repro.methods import get_method  # noqa: E402
from repro.results import cpu_model, git_commit  # noqa: E402
from repro.tasks import lama as lama_data  # noqa: E402
from repro.tasks.lama import Lama  # noqa: E402
from repro.tasks.registry import get_task  # noqa: E402

VARIANTS = ("plain", "first", "cached")
_made = {"n": 0}
_uncached = Template.render_uncached


def _counting(self, *args, **kwargs):
    _made["n"] += 1
    return _uncached(self, *args, **kwargs)


Template.render_uncached = _counting  # type: ignore[method-assign]


def lama_units(backbone, root: Path) -> list[tuple[Any, Template, list, Any]]:
    """(task, template, test examples, config) per relation: MP's manual prompt, the 29k vocabulary's kept facts."""
    tok = backbone.tokenizer
    config = LamaConfig(method="mp")
    key = lama_data.matching_vocab_key(root, "29k", tok)
    vocab = lama_data.allowed_vocab(root, "29k", tok, tokenizer_key=key, space_before=True)
    method = get_method("mp", "lama")
    units = []
    for relation in lama_data.get_relations(root):
        kept, _ = lama_data.filter_facts(lama_data.load_facts(root, relation, "test"), vocab)
        units.append((Lama(relation, vocab), method_template(method, relation, backbone, config),
                      Lama.facts_as_examples(kept, "test"), config))
    return units


def superglue_units(backbone, root: Path, name: str) -> list[tuple[Any, Template, list, Any]]:
    task = get_task(name)
    config = SuperGLUEConfig(task=name, method="mp", preset="cpu")
    variant = task.default_variant("manual", causal=backbone.is_causal)
    return [(task, task.template("manual", variant), task.read(root / task.files().eval), config)]


def render_units(backbone, units, benchmark: str) -> tuple[float, int, list]:
    """(seconds, renderings made, inputs) of every unit's evaluation inputs, scorers built before the clock."""
    method = get_method("mp", benchmark)
    scorers = [build_scorer(task, method, backbone, template, "manual", config, 42,
                            max_length=getattr(config, "max_length", None), quiet=True)
               for task, template, _, config in units]
    _made["n"] = 0
    start = time.perf_counter()
    inputs = [scorer.eval_inputs(examples) for scorer, (_, _, examples, _) in zip(scorers, units)]
    return time.perf_counter() - start, _made["n"], inputs


def measure(backbone, units, benchmark: str, rounds: int) -> dict[str, Any]:
    """Median seconds and renderings of each variant over `rounds` rounds, each round on a fresh cache dir."""
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    made: dict[str, int] = {}
    reference = None
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="render-cache-") as cache:
            for variant in VARIANTS:
                os.environ["REPRO_CACHE_DIR"] = cache
                os.environ[renders.ENV_SWITCH] = "0" if variant == "plain" else "1"
                took, made[variant], inputs = render_units(backbone, units, benchmark)
                reference = reference if reference is not None else inputs
                if inputs != reference:
                    raise AssertionError(f"{variant}: inputs differ from the uncached rendering")
                seconds[variant].append(took)
    median = {v: statistics.median(s) for v, s in seconds.items()}
    return {"examples": sum(len(u[2]) for u in units), "units": len(units), "rounds": rounds,
            "seconds": median, "renderings": made,
            "first_over_plain": median["first"] / median["plain"],
            "speedup_cached_vs_plain": median["plain"] / median["cached"],
            "speedup_cached_vs_first": median["first"] / median["cached"]}


def reading(root: Path, backbone, rounds: int) -> dict[str, Any]:
    """Reading the workloads' files into examples: the json builder's first read against its cached Arrow files."""
    def read_all() -> float:
        start = time.perf_counter()
        lama_units(backbone, root)
        for name in ("boolq", "multirc"):
            superglue_units(backbone, root, name)
        return time.perf_counter() - start

    first, cached = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="datasets-cache-") as cache:
            os.environ["REPRO_CACHE_DIR"] = cache
            first.append(read_all())
            cached.append(read_all())
    return {"first_s": statistics.median(first), "cached_s": statistics.median(cached)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "render_cache.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    load_before = os.getloadavg()[0]
    workloads: dict[str, Callable[[], list]] = {
        "LAMA test, 41 relations": lambda: lama_units(backbone, root),
        "BoolQ dev": lambda: superglue_units(backbone, root, "boolq"),
        "MultiRC dev": lambda: superglue_units(backbone, root, "multirc"),
    }
    results = {name: measure(backbone, make(), "lama" if name.startswith("LAMA") else "superglue", args.rounds)
               for name, make in workloads.items()}
    report = {
        "backbone": args.backbone, "cpu": cpu_model(), "threads": torch.get_num_threads(), "commit": git_commit(),
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "workloads": results, "reading": reading(root, backbone, args.rounds),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_report(args.out, report, format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    lines = [f"CPU: {report['cpu']}, {report['threads']} thread(s); commit {report['commit']}; load average "
             f"{report['load_average_before']:.1f} -> {report['load_average_after']:.1f}",
             f"Rendering the evaluation inputs with the {report['backbone']} tokenizer (MP's patterns): the cache off "
             "(plain), its first run (renders and writes the Dataset.map cache), the next run (reads it back); "
             "medians of rounds on a fresh cache dir",
             f"{'workload':<26}{'inputs':>8}{'plain s':>9}{'first s':>9}{'cached s':>10}{'first/plain':>13}"
             f"{'plain/cached':>14}{'renders (plain, first, cached)':>32}"]
    for name, row in report["workloads"].items():
        s, made = row["seconds"], row["renderings"]
        lines.append(f"{name:<26}{row['examples']:>8}{s['plain']:>9.2f}{s['first']:>9.2f}{s['cached']:>10.2f}"
                     f"{row['first_over_plain']:>13.2f}{row['speedup_cached_vs_plain']:>14.1f}"
                     f"{made['plain']:>12}, {made['first']}, {made['cached']}")
    read = report["reading"]
    lines += ["", f"Reading those files into examples (line-scan validation + json builder): first read "
                  f"{read['first_s']:.2f} s, from the builder's cached Arrow files {read['cached_s']:.2f} s",
              f"command: {report['command']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
