"""LAMA speed and memory, as ratios against baselines measured in the same run (these machines are noisy).

1. Evaluation throughput (facts/s) of our MP evaluation against a plain Hugging Face loop on the same
   backbone, facts and batch size: full-vocabulary logits at every position, fp32, dataset order. Ours:
   length-sorted batches, LM head only at the read position and only over the allowed vocabulary, in fp32
   and in bf16. P@1 of each is printed: fp32 must equal the baseline's, bf16 stay within 0.5 point.
2. One P-tuning training step (batch of facts, the paper's LSTM encoder, 6 prompt tokens) against PEFT's
   P-tuning step (6 prefix virtual tokens, the same encoder): same batch, same fp32 precision; ours also bf16.
3. Peak memory of each variant, each in its own subprocess: the resident-set high-water mark is reset after
   loading (Linux `/proc/self/clear_refs`), so the figure is the model in memory plus what the measured
   operation adds, not the transient peak of loading the checkpoint.

    .venv/bin/python benchmarks/lama_speed.py            # prints a table, writes benchmarks/results/lama_speed.json

Timings alternate baseline and ours (`--rounds`) and report medians, so load from other processes hits both.
"""

from __future__ import annotations

import argparse
import json
import resource
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
from repro.ptuning import PromptEncoder, paper_lstm_config  # noqa: E402
from repro.core.inference import argmax_candidates  # noqa: E402
from repro.core.template import Template  # noqa: E402
from tasks import lama as lama_data  # noqa: E402

RELATIONS = ["P17", "P19", "P101", "P1412"]


def load_facts(backbone, root: Path, limit: int):
    vocab = lama_data.allowed_vocab(root, "29k", backbone.tokenizer,
                                    tokenizer_key=lama_data.matching_vocab_key(root, "29k", backbone.tokenizer),
                                    space_before=True)
    rendered, gold = [], []
    for relation in lama_data.get_relations(root, RELATIONS):
        template = Template.parse(relation.prompt)
        kept, _ = lama_data.filter_facts(lama_data.load_facts(root, relation, "test"), vocab)
        for fact in kept[: limit // len(RELATIONS)]:
            target = vocab.id_of(fact.obj_label)
            rendered.append(template.render(backbone.tokenizer, {"sub": fact.sub_label}, causal=True, target_ids=[target]))
            gold.append(target)
    return rendered, gold, vocab.tensor()


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


def ours_eval(model: PromptedLM, rendered, vocab_ids, batch_size: int) -> list[int]:
    best = argmax_candidates(model, rendered, vocab_ids, batch_size=batch_size, quiet=True)
    return vocab_ids[best].tolist()


def p_at_1(predicted, gold) -> float:
    return 100.0 * sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --------------------------------------------------------------------------------------------- variants
def run_variant(name: str, args) -> dict:
    """One measurement in this process (used for peak memory, each variant in its own subprocess)."""
    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    reset_peak_rss()
    if name.startswith("eval"):
        rendered, gold, vocab_ids = load_facts(backbone, root, args.facts)
        if name == "eval-baseline":
            seconds, predicted = timed(lambda: baseline_eval(backbone, rendered, vocab_ids, args.batch_size))
        else:
            model = PromptedLM(backbone, dtype="bfloat16" if name == "eval-ours-bf16" else "float32")
            seconds, predicted = timed(lambda: ours_eval(model, rendered, vocab_ids, args.batch_size))
        result = {"seconds": seconds, "facts_per_s": len(rendered) / seconds, "p_at_1": p_at_1(predicted, gold)}
    else:
        step = make_train_step(name, backbone, root, args.train_batch)
        step()
        seconds, _ = timed(step)
        result = {"seconds": seconds}
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_train_step(name: str, backbone, root: Path, batch_size: int):
    """A closure doing one optimizer step of P-tuning on a fixed batch: ours or PEFT's."""
    tok = backbone.tokenizer
    facts = lama_data.load_facts(root, "P17", "train")[:batch_size]
    vocab = lama_data.allowed_vocab(root, "29k", tok, space_before=True)
    facts = [f for f in facts if f.obj_label in vocab] or facts[:0]
    hidden = backbone.hidden_size
    torch.manual_seed(0)
    if name.startswith("train-ours"):
        template = Template.parse("[P*3] {sub} [P*3] [MASK]")
        encoder = PromptEncoder(paper_lstm_config(6, hidden))
        model = PromptedLM(backbone, encoder, dtype="bfloat16" if name == "train-ours-bf16" else "float32")
        batch = collate([template.render(tok, {"sub": f.sub_label}, causal=True, target_ids=[vocab.id_of(f.obj_label)])
                         for f in facts], pad_id_of(tok))
        optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-5)
        model.train()

        def step():
            optimizer.zero_grad()
            model.loss(batch).backward()
            optimizer.step()

        return step
    import peft

    config = peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=6, token_dim=hidden,
                                      encoder_reparameterization_type="LSTM", encoder_hidden_size=hidden // 2)
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

    def step():
        optimizer.zero_grad()
        model(input_ids=input_ids, attention_mask=attention, labels=labels).loss.backward()
        optimizer.step()

    return step


def measure_memory(name: str, args) -> float:
    cmd = [sys.executable, __file__, "--variant", name, "--facts", str(args.facts), "--batch-size",
           str(args.batch_size), "--train-batch", str(args.train_batch), "--backbone", args.backbone]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--facts", type=int, default=1024, help="test facts evaluated (from 4 relations)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lama_speed.json"))
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return 0

    root = data_root(args.data_root)
    backbone = load_backbone(args.backbone)
    rendered, gold, vocab_ids = load_facts(backbone, root, args.facts)
    ours32 = PromptedLM(load_backbone(args.backbone), dtype="float32")
    ours16 = PromptedLM(load_backbone(args.backbone), dtype="bfloat16")
    times = {"baseline": [], "ours-fp32": [], "ours-bf16": []}
    scores = {}
    for _ in range(args.rounds):
        for key, fn in (("baseline", lambda: baseline_eval(backbone, rendered, vocab_ids, args.batch_size)),
                        ("ours-fp32", lambda: ours_eval(ours32, rendered, vocab_ids, args.batch_size)),
                        ("ours-bf16", lambda: ours_eval(ours16, rendered, vocab_ids, args.batch_size))):
            seconds, predicted = timed(fn)
            times[key].append(seconds)
            scores[key] = p_at_1(predicted, gold)
    del ours32, ours16

    steps = {name: make_train_step(name, load_backbone(args.backbone), root, args.train_batch)
             for name in ("train-peft", "train-ours-fp32", "train-ours-bf16")}
    step_times = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(max(5, args.rounds * 2)):
        for name, step in steps.items():
            step_times[name].append(timed(step)[0])

    memory = {name: measure_memory(name, args) for name in
              ("eval-baseline", "eval-ours-fp32", "eval-ours-bf16", "train-peft", "train-ours-fp32", "train-ours-bf16")}
    eval_median = {k: statistics.median(v) for k, v in times.items()}
    step_median = {k: statistics.median(v) for k, v in step_times.items()}
    report = {
        "backbone": args.backbone, "facts": len(rendered), "batch_size": args.batch_size,
        "train_batch": args.train_batch, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "eval": {k: {"median_s": eval_median[k], "facts_per_s": len(rendered) / eval_median[k], "p_at_1": scores[k],
                     "speedup_vs_baseline": eval_median["baseline"] / eval_median[k],
                     "peak_rss_mib": memory[f"eval-{k}"]} for k in times},
        "train_step": {k: {"median_s": step_median[k], "speedup_vs_peft": step_median["train-peft"] / step_median[k],
                           "peak_rss_mib": memory[k]} for k in step_times},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    lines = [f"LAMA MP evaluation, {report['backbone']}, {report['facts']} facts, batch {report['batch_size']}, "
             f"{report['threads']} threads (medians of {report['rounds']} alternating rounds)",
             f"{'variant':<12}{'facts/s':>9}{'x baseline':>12}{'P@1':>8}{'peak MiB':>10}"]
    for key, row in report["eval"].items():
        lines.append(f"{key:<12}{row['facts_per_s']:>9.1f}{row['speedup_vs_baseline']:>12.2f}{row['p_at_1']:>8.2f}"
                     f"{row['peak_rss_mib']:>10.0f}")
    lines += ["", f"P-tuning training step, batch {report['train_batch']}, LSTM encoder, 6 prompt tokens",
              f"{'variant':<18}{'s/step':>8}{'x PEFT':>8}{'peak MiB':>10}"]
    for key, row in report["train_step"].items():
        lines.append(f"{key:<18}{row['median_s']:>8.3f}{row['speedup_vs_peft']:>8.2f}{row['peak_rss_mib']:>10.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
