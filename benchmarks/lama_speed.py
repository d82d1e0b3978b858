"""LAMA speed and memory, as ratios against baselines measured in the same run (these machines are noisy).

1. Evaluation throughput (facts/s) of our MP evaluation against a plain Hugging Face loop on the same
   backbone and facts: full-vocabulary logits at every position, fp32, dataset order, batches of
   `--batch-size` rows. Ours (`argmax_candidates`): length-sorted token-budget batches (exact-length ones
   without padding or attention mask), LM head only at the read position and only over the allowed
   vocabulary, in fp32 and in bf16. The slow baseline runs on a fixed sample of facts (every k-th of all 41
   relations' kept test facts); the ratios and P@1 comparisons are on that sample: fp32 must equal the
   baseline's P@1, bf16 stay within 0.5 point. Ours in bf16 also runs over all 41 relations' kept test facts,
   the figure the rate target is about.
   Rates: FLOPs from the model's shape (`benchmarks/machine.py`) over the tokens processed, against the
   machine's large-GEMM rate in the same dtype, measured in this run right before each workload.
2. One P-tuning training step (batch of facts, 6 prompt tokens, `--encoder`: the `cpu` preset's MLP by
   default, or the paper's LSTM) against PEFT's P-tuning step (6 prefix virtual tokens, the same encoder and
   width): same batch, same fp32 precision; ours also bf16. Ours runs as our trainer runs it, under
   `training_kernels` (on CPU the math attention kernel, whose backward is cheaper at these lengths); PEFT's
   step runs as PEFT's users get it (the default kernel), and once more under our kernel choice
   (`train-peft-math`), so the table shows how much of the ratio the kernel choice is.
3. Peak memory of each variant, each in its own subprocess: the resident-set high-water mark is reset after
   loading (Linux `/proc/self/clear_refs`), so the figure is the model in memory plus what the measured
   operation adds, not the transient peak of loading the checkpoint.

    .venv/bin/python benchmarks/lama_speed.py      # prints the figures, writes benchmarks/results/lama_speed.json/.txt

Timings alternate baseline and ours (`--rounds`) and report medians, so load from other processes hits both.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro.core.backbone import load_backbone  # noqa: E402
from repro.core.batch import collate, pad_id_of  # noqa: E402
from repro.data import data_root  # noqa: E402
from repro.core.model import PromptedLM  # noqa: E402
from repro.ptuning import PromptEncoder, PromptEncoderConfig, paper_lstm_config  # noqa: E402
from repro.core.inference import EVAL_TOKENS, argmax_candidates  # noqa: E402
from benchmarks.machine import (  # noqa: E402
    ModelShape, cpu_model, matmul_peak_gflops, peak_rss_mib, rate_line, reset_peak_rss, write_report,
)
from repro.core.template import Template  # noqa: E402
from repro.core.training import training_kernels  # noqa: E402
from repro.tasks import lama as lama_data  # noqa: E402

def load_facts(backbone, root: Path):
    """All 41 relations' kept test facts (manual prompts, 29k vocabulary), rendered once."""
    tok = backbone.tokenizer
    vocab = lama_data.allowed_vocab(root, "29k", tok, tokenizer_key=lama_data.matching_vocab_key(root, "29k", tok),
                                    space_before=True)
    rendered, gold = [], []
    for relation in lama_data.get_relations(root):
        template = Template.parse(relation.prompt)
        kept, _ = lama_data.filter_facts(lama_data.load_facts(root, relation, "test"), vocab)
        for fact in kept:
            target = vocab.id_of(fact.obj_label)
            rendered.append(template.render(tok, {"sub": fact.sub_label}, causal=True, target_ids=[target]))
            gold.append(target)
    return rendered, gold, vocab.tensor()


def sample(items: list, size: int) -> list:
    """Every k-th item (a fixed, spread-out sample: all relations, dataset order kept)."""
    step = max(1, len(items) // size)
    return items[::step][:size]


@torch.no_grad()
def baseline_eval(backbone, rendered, vocab_ids, batch_size: int) -> list[int]:
    """A plain loop: dataset order, model(...).logits over the full vocabulary at every position, fp32."""
    model, pad = backbone.model, pad_id_of(backbone.tokenizer)
    predictions = []
    for start in range(0, len(rendered), batch_size):
        chunk = rendered[start : start + batch_size]
        batch = collate(chunk, pad)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        rows = torch.arange(len(chunk))
        read = logits[rows, batch.target_positions[:, 0]]
        predictions += vocab_ids[read[:, vocab_ids].argmax(-1)].tolist()
    return predictions


def ours_eval(model: PromptedLM, rendered, vocab_ids, batch_size: int, max_tokens: int) -> list[int]:
    best = argmax_candidates(model, rendered, vocab_ids, batch_size=batch_size, max_tokens=max_tokens, quiet=True)
    return vocab_ids[best].tolist()


def p_at_1(predicted, gold) -> float:
    return 100.0 * sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --------------------------------------------------------------------------------------------- variants
STEP_DTYPES = {"train-peft": torch.float32, "train-peft-math": torch.float32, "train-ours-fp32": torch.float32,
               "train-ours-bf16": torch.bfloat16}  # the training-step variants, in the order they alternate


def run_variant(name: str, args) -> dict:
    """One measurement in this process (used for peak memory, each variant in its own subprocess)."""
    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    reset_peak_rss()
    if name.startswith("eval"):
        rendered, gold, vocab_ids = load_facts(backbone, root)
        rendered, gold = sample(rendered, args.facts), sample(gold, args.facts)
        if name == "eval-baseline":
            seconds, predicted = timed(lambda: baseline_eval(backbone, rendered, vocab_ids, args.batch_size))
        else:
            model = PromptedLM(backbone, dtype="bfloat16" if name == "eval-ours-bf16" else "float32")
            seconds, predicted = timed(lambda: ours_eval(model, rendered, vocab_ids, args.eval_rows, args.eval_tokens))
        result = {"seconds": seconds, "facts_per_s": len(rendered) / seconds, "p_at_1": p_at_1(predicted, gold)}
    else:
        step = make_train_step(name, backbone, root, args.train_batch, args.encoder)
        step()
        seconds, _ = timed(step)
        result = {"seconds": seconds}
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def make_train_step(name: str, backbone, root: Path, batch_size: int, encoder_kind: str):
    """A closure doing one optimizer step of P-tuning on a fixed batch (returning its loss): ours or PEFT's, with
    the same encoder (`mlp`: PEFT's default, which the `cpu` preset trains; `lstm`: the paper's), hidden width d/2."""
    tok = backbone.tokenizer
    facts = lama_data.load_facts(root, "P17", "train")[:batch_size]
    vocab = lama_data.allowed_vocab(root, "29k", tok, space_before=True)
    facts = [f for f in facts if f.obj_label in vocab] or facts[:0]
    hidden = backbone.hidden_size
    torch.manual_seed(0)
    if name.startswith("train-ours"):
        template = Template.parse("[P*3] {sub} [P*3] [MASK]")
        encoder = PromptEncoder(paper_lstm_config(6, hidden) if encoder_kind == "lstm" else
                                PromptEncoderConfig(num_virtual_tokens=6, token_dim=hidden, encoder_hidden_size=hidden // 2))
        model = PromptedLM(backbone, encoder, dtype="bfloat16" if name == "train-ours-bf16" else "float32")
        batch = collate([template.render(tok, {"sub": f.sub_label}, causal=True, target_ids=[vocab.id_of(f.obj_label)])
                         for f in facts], pad_id_of(tok))
        optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-5)
        model.train()

        def step() -> float:
            optimizer.zero_grad()
            with training_kernels(torch.device("cpu")):  # as the training loops run the forward and backward
                loss = model.loss(batch)
                loss.backward()
            optimizer.step()
            return loss.item()

        return step
    import peft

    config = peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=6, token_dim=hidden,
                                      encoder_reparameterization_type=encoder_kind.upper(),
                                      encoder_hidden_size=hidden // 2)
    model = peft.get_peft_model(backbone.model, config)
    texts = [f" {f.sub_label}" for f in facts]
    encoded = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    lengths = encoded["attention_mask"].sum(1)
    input_ids = torch.cat([encoded["input_ids"], torch.full((len(facts), 1), pad_id_of(tok))], dim=1)
    attention = torch.cat([encoded["attention_mask"], torch.zeros(len(facts), 1, dtype=torch.long)], dim=1)
    labels = torch.full_like(input_ids, -100)
    for row, (n, fact) in enumerate(zip(lengths.tolist(), facts)):
        input_ids[row, n] = vocab.id_of(fact.obj_label)
        attention[row, n] = 1
        labels[row, n] = vocab.id_of(fact.obj_label)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()

    kernels = training_kernels if name == "train-peft-math" else (lambda device: contextlib.nullcontext())

    def step() -> float:
        optimizer.zero_grad()
        with kernels(torch.device("cpu")):
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
        optimizer.step()
        return loss.item()

    return step


def measure_memory(name: str, args) -> float:
    cmd = [sys.executable, __file__, "--variant", name, "--facts", str(args.facts), "--batch-size",
           str(args.batch_size), "--eval-rows", str(args.eval_rows), "--eval-tokens", str(args.eval_tokens),
           "--train-batch", str(args.train_batch), "--backbone", args.backbone, "--threads", str(args.threads),
           "--encoder", args.encoder]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def train_flops(shape: ModelShape, backbone, root: Path, batch_size: int) -> float:
    """The work a P-tuning step needs (the same count for ours and PEFT's): the forward over the rendered facts
    (6 prompt tokens), the full-vocabulary head at each target, and the backward through the frozen LM
    (input gradients only: about the forward again)."""
    tok = backbone.tokenizer
    template = Template.parse("[P*3] {sub} [P*3] [MASK]")
    facts = lama_data.load_facts(root, "P17", "train")[:batch_size]
    lengths = [len(template.render(tok, {"sub": f.sub_label}, causal=True).input_ids) for f in facts]
    return 2 * shape.forward_flops(lengths, len(facts) * backbone.model.config.vocab_size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--facts", type=int, default=1024, help="sampled facts for the baseline comparison")
    parser.add_argument("--batch-size", type=int, default=64, help="the baseline's rows per batch")
    parser.add_argument("--eval-rows", type=int, default=512, help="ours: rows per batch, at most")
    parser.add_argument("--eval-tokens", type=int, default=EVAL_TOKENS, help="ours: tokens per batch, at most")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--encoder", choices=("mlp", "lstm"), default="mlp",
                        help="the training step's prompt encoder: mlp (the cpu preset's) or lstm (the paper's)")
    parser.add_argument("--limit", type=int, default=0, help="smoke runs: only every k-th fact of all (0: all)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds on the sample (medians)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lama_speed.json"))
    args = parser.parse_args()
    if importlib.util.find_spec("peft") is None:  # needed by the last part: say so before minutes of evaluation
        parser.error("the training-step comparison needs peft, which the main job's environment leaves out: "
                     ".venv/bin/python -m pip install -c constraints.txt peft (the test environment has it)")
    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return 0

    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    shape = ModelShape.of(backbone.model)
    all_rendered, all_gold, vocab_ids = load_facts(backbone, root)
    if args.limit:
        all_rendered, all_gold = sample(all_rendered, args.limit), sample(all_gold, args.limit)
    rendered, gold = sample(all_rendered, args.facts), sample(all_gold, args.facts)
    models = {"ours-fp32": PromptedLM(load_backbone(args.backbone), dtype="float32"),
              "ours-bf16": PromptedLM(load_backbone(args.backbone), dtype="bfloat16")}
    dtypes = {"baseline": torch.float32, "ours-fp32": torch.float32, "ours-bf16": torch.bfloat16}
    peaks: dict[str, list[float]] = {"float32": [], "bfloat16": []}

    def peak(dtype: torch.dtype) -> float:
        value = matmul_peak_gflops(dtype, repeats=4)
        peaks[str(dtype).split(".")[1]].append(value)
        return value

    # 1. all 41 relations, ours in bf16: the rate target (peak measured right before, and after)
    full = {"facts": len(all_rendered), "tokens": sum(len(r.input_ids) for r in all_rendered)}
    full["flops"] = shape.forward_flops([len(r.input_ids) for r in all_rendered], len(all_rendered) * len(vocab_ids))
    before = peak(torch.bfloat16)
    full["seconds"], predicted = timed(lambda: ours_eval(models["ours-bf16"], all_rendered, vocab_ids,
                                                         args.eval_rows, args.eval_tokens))
    full["peak_gflops"] = statistics.mean([before, peak(torch.bfloat16)])
    full["p_at_1"] = p_at_1(predicted, all_gold)
    full["gflops"] = full["flops"] / full["seconds"] / 1e9
    full["fraction_of_peak"] = full["gflops"] / full["peak_gflops"]

    # 2. the sample: baseline and ours alternating, each preceded by a peak measurement in its dtype
    runs = {"baseline": lambda: baseline_eval(backbone, rendered, vocab_ids, args.batch_size),
            "ours-fp32": lambda: ours_eval(models["ours-fp32"], rendered, vocab_ids, args.eval_rows, args.eval_tokens),
            "ours-bf16": lambda: ours_eval(models["ours-bf16"], rendered, vocab_ids, args.eval_rows, args.eval_tokens)}
    times = {k: [] for k in runs}
    sample_peaks = {k: [] for k in runs}
    scores = {}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            sample_peaks[key].append(peak(dtypes[key]))
            seconds, predicted = timed(fn)
            times[key].append(seconds)
            scores[key] = p_at_1(predicted, gold)
    del models
    sample_flops = shape.forward_flops([len(r.input_ids) for r in rendered], len(rendered) * len(vocab_ids))

    # 3. the P-tuning step
    steps = {name: make_train_step(name, load_backbone(args.backbone), root, args.train_batch, args.encoder)
             for name in STEP_DTYPES}
    step_flops = train_flops(shape, backbone, root, args.train_batch)
    step_times = {name: [] for name in steps}
    step_peaks = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(max(5, args.rounds * 2)):
        for name, step in steps.items():
            step_peaks[name].append(peak(STEP_DTYPES[name]) if len(step_peaks[name]) < 2 else step_peaks[name][-1])
            step_times[name].append(timed(step)[0])

    memory = {name: measure_memory(name, args) for name in
              ("eval-baseline", "eval-ours-fp32", "eval-ours-bf16", *STEP_DTYPES)}
    eval_median = {k: statistics.median(v) for k, v in times.items()}
    step_median = {k: statistics.median(v) for k, v in step_times.items()}

    def rate(flops: float, seconds: float, peak_values: list[float]) -> dict:
        gflops = flops / seconds / 1e9
        return {"gflops": gflops, "peak_gflops": statistics.median(peak_values),
                "fraction_of_peak": gflops / statistics.median(peak_values)}

    report = {
        "backbone": args.backbone, "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "matmul_peak_gflops": {k: statistics.median(v) for k, v in peaks.items() if v},
        "full": full, "sample_facts": len(rendered), "baseline_batch_size": args.batch_size,
        "eval_rows": args.eval_rows, "eval_tokens": args.eval_tokens,
        "train_batch": args.train_batch, "encoder": args.encoder, "rounds": args.rounds, "limit": args.limit,
        "eval": {k: {"median_s": eval_median[k], "facts_per_s": len(rendered) / eval_median[k], "p_at_1": scores[k],
                     "speedup_vs_baseline": eval_median["baseline"] / eval_median[k],
                     **rate(sample_flops, eval_median[k], sample_peaks[k]),
                     "peak_rss_mib": memory[f"eval-{k}"]} for k in times},
        "train_step": {k: {"median_s": step_median[k], "speedup_vs_peft": step_median["train-peft"] / step_median[k],
                           **rate(step_flops, step_median[k], step_peaks[k]),
                           "peak_rss_mib": memory[k]} for k in step_times},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_report(args.out, report, format_report(report))
    return 0


def format_report(report: dict) -> str:
    full, peaks = report["full"], report["matmul_peak_gflops"]
    lines = [f"CPU: {report['cpu']}, {report['threads']} threads; large-GEMM rate measured in this run: "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()),
             "",
             f"LAMA MP evaluation, {report['backbone']}, all 41 relations' kept test facts (29k vocab, manual prompts)"
             + (f" (smoke run: a sample of {full['facts']})" if report["limit"] else ""),
             f"ours-bf16: {full['facts']} facts, {full['tokens']} tokens in {full['seconds']:.1f} s = "
             f"{full['facts'] / full['seconds']:.0f} facts/s; P@1 {full['p_at_1']:.2f}",
             "  " + rate_line("rate", full["flops"], full["seconds"], full["peak_gflops"]),
             "",
             f"Against the plain HF loop (fp32, full-vocab logits at every position, dataset order, batch "
             f"{report['baseline_batch_size']}) on a fixed sample of {report['sample_facts']} facts (every k-th of "
             f"all 41 relations); ours: up to {report['eval_rows']} rows / {report['eval_tokens']} tokens per batch; "
             f"medians of {report['rounds']} alternating rounds",
             f"{'variant':<12}{'facts/s':>9}{'x baseline':>12}{'P@1':>8}{'GFLOP/s':>9}{'of peak':>9}{'peak MiB':>10}"]
    for key, row in report["eval"].items():
        lines.append(f"{key:<12}{row['facts_per_s']:>9.1f}{row['speedup_vs_baseline']:>12.2f}{row['p_at_1']:>8.2f}"
                     f"{row['gflops']:>9.0f}{100 * row['fraction_of_peak']:>8.0f}%{row['peak_rss_mib']:>10.0f}")
    lines += ["", f"P-tuning training step, batch {report['train_batch']}, {report['encoder'].upper()} encoder, "
                  "6 prompt tokens "
                  "(GFLOP/s: the step's needed work, the same count for every variant; ours under the trainer's "
                  "attention kernel, train-peft under PEFT's default, train-peft-math under ours)",
              f"{'variant':<18}{'s/step':>8}{'x PEFT':>8}{'GFLOP/s':>9}{'of peak':>9}{'peak MiB':>10}"]
    for key, row in report["train_step"].items():
        lines.append(f"{key:<18}{row['median_s']:>8.3f}{row['speedup_vs_peft']:>8.2f}{row['gflops']:>9.0f}"
                     f"{100 * row['fraction_of_peak']:>8.0f}%{row['peak_rss_mib']:>10.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
