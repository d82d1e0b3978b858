"""LAMA knowledge probing (the paper's Table 2): MP, FT, MP+FT and P-tuning, per relation, P@1.

`python -m repro lama --backbone smollm2-135m --method ptuning --vocab 29k --preset cpu`

Per relation: keep the facts whose object is one token of the allowed vocabulary, train where the method
trains (P-tuning: a fresh prompt encoder per relation on a frozen LM; FT/MP+FT: the LM itself, restored to
its pretrained weights before each relation), pick the best-dev epoch, and take test P@1 = argmax within the
allowed vocabulary. One `Pxx.json` per relation and a `summary.json` with macro (mean over relations, as the
paper's tables) and micro (over facts) P@1. A finished relation is never recomputed; an interrupted one
resumes from its last checkpoint under `runs/` with the same numbers.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from repro import metrics
from repro.core.backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from repro.core.batch import collate, pad_id_of
from repro.data import data_root
from repro.errors import ConfigError
from repro.methods import Method, Style, get_method, method_names
from repro.core.model import PromptedLM
from repro.ptuning import PromptEncoder, PromptEncoderConfig, paper_lstm_config
from repro.results import PROJECT_ROOT, RunRecord, write_result
from repro.core.inference import argmax_candidates
from repro.core.template import Rendered, Template
from repro.core.training import TrainConfig, set_seed, train
from tasks import lama as lama_data

@dataclass(frozen=True)
class Preset:
    """A named schedule. `paper`: the authors' LAMA settings (fp32, up to 100 epochs, early stopping).
    `cpu`: fits 41 relations, MP and P-tuning, in under half an hour on 2 CPU cores: 32 steps of 16 facts
    per relation (under one epoch), the encoder's learning rate raised to 1e-3 for so few steps with a linear
    warm-up over the first quarter (without it some relations' encoders stall at a loss near 9 within the
    first steps), dev P@1 on 64 facts every 16 steps, the frozen LM in bf16. The settings were chosen on dev
    P@1 (REPRODUCING.md lists the candidates and the trade-offs)."""

    train: TrainConfig
    dtype: str
    max_train: Optional[int]  # facts per relation used for training (None: all)
    max_dev: Optional[int]  # facts per relation used for model selection (None: all)
    eval_batch_size: int


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        TrainConfig(optimizer="adam", lr_encoder=1e-5, lr_backbone=1e-5, weight_decay=5e-4, schedule="exponential",
                    gamma=0.98, batch_size=8, max_epochs=100, patience=20, seed=34),
        dtype="float32", max_train=None, max_dev=None, eval_batch_size=64,
    ),
    "cpu": Preset(
        TrainConfig(optimizer="adam", lr_encoder=1e-3, lr_backbone=1e-5, weight_decay=5e-4, schedule="linear",
                    warmup_ratio=0.25, batch_size=16, max_epochs=100, max_steps=32, eval_every_steps=16,
                    patience=None, seed=34),
        dtype="bfloat16", max_train=None, max_dev=64, eval_batch_size=64,
    ),
}


@dataclass
class LamaConfig:
    """One LAMA run. Serialised next to its results, so the same config reruns the same numbers."""

    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "embedded name, local dir or hub id"})
    method: str = field(default="ptuning", metadata={"help": "mp | ft | mp+ft | ptuning"})
    vocab: str = field(default="29k", metadata={"help": "29k | 34k | full"})
    relations: Optional[list[str]] = field(default=None, metadata={"help": "relation ids (None: all 41)"})
    preset: str = field(default="cpu", metadata={"help": "paper | cpu"})
    seed: int = field(default=34, metadata={"help": "seed (the paper's: 34)"})
    encoder: str = field(default="lstm", metadata={"help": "lstm (the paper's) | mlp (PEFT's default)"})
    template: Optional[str] = field(default=None, metadata={"help": "P-tuning template (None: the paper's)"})
    mask_order: str = field(default="paper", metadata={"help": "masked LMs: paper (sub before [MASK]) | code"})
    vocab_key: Optional[str] = field(default=None, metadata={"help": "key of the vocab file for this tokenizer"})
    dtype: str = field(default="", metadata={"help": "float32 | bfloat16 (empty: the preset's)"})
    train: Optional[TrainConfig] = field(default=None, metadata={"help": "training settings (None: the preset's)"})
    max_train: Optional[int] = field(default=-1, metadata={"help": "train facts per relation (-1: preset's)"})
    max_dev: Optional[int] = field(default=-1, metadata={"help": "dev facts per relation (-1: preset's)"})
    eval_batch_size: int = field(default=0, metadata={"help": "evaluation batch size (0: preset's)"})
    backbone_kind: str = field(default="", metadata={"help": "masked | causal: filled in from the loaded backbone"})

    def __post_init__(self) -> None:
        get_method(self.method, "lama")
        if self.vocab not in lama_data.VOCAB_STRATEGIES:
            raise ConfigError(f"unknown vocab {self.vocab!r}; valid: {', '.join(lama_data.VOCAB_STRATEGIES)}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        if self.encoder not in ("lstm", "mlp"):
            raise ConfigError(f"unknown encoder {self.encoder!r}; valid: lstm, mlp")
        if self.mask_order not in ("paper", "code"):
            raise ConfigError(f"unknown mask order {self.mask_order!r}; valid: paper, code")
        preset = PRESETS[self.preset]
        self.dtype = self.dtype or preset.dtype
        self.train = replace(self.train or preset.train, seed=self.seed)
        self.max_train = preset.max_train if self.max_train == -1 else self.max_train
        self.max_dev = preset.max_dev if self.max_dev == -1 else self.max_dev
        self.eval_batch_size = self.eval_batch_size or preset.eval_batch_size

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "train"}
        data["train"] = asdict(self.train)
        data["task"] = "lama"
        return data

    def fingerprint(self) -> str:
        """What decides a relation's numbers (the relation list does not)."""
        data = self.to_dict()
        data.pop("relations")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def ptuning_template(backbone: Backbone, config: LamaConfig) -> Template:
    """The paper's templates: (3, sub, 3, obj, 3) for masked LMs, (3, sub, 3, obj) for causal LMs."""
    if config.template:
        return Template.parse(config.template, masked=not backbone.is_causal)
    if backbone.is_causal:
        return Template.parse("[P*3] {sub} [P*3] [MASK]")
    if config.mask_order == "code":  # the authors' BERT code puts [MASK] before the subject
        return Template.parse("[P*3] [MASK] [P*3] {sub} [P*3]")
    return Template.parse("[P*3] {sub} [P*3] [MASK] [P*3]")


def method_template(method: Method, relation: lama_data.Relation, backbone: Backbone, config: LamaConfig) -> Template:
    if method.style is Style.MANUAL:
        return Template.parse(relation.prompt)
    if method.style is Style.BARE:
        return Template.parse("{sub} [MASK]")
    return ptuning_template(backbone, config)


def output_dir(results_root: Path, backbone_name: str, config: LamaConfig) -> Path:
    return results_root / "lama" / backbone_name / f"{config.method}-{config.vocab}"


def run_lama(
    config: LamaConfig,
    *,
    root: Optional[Path] = None,
    results_root: Path = PROJECT_ROOT / "results",
    runs_root: Path = PROJECT_ROOT / "runs",
    backbone: Optional[Backbone] = None,
    device: str = "cpu",
    quiet: bool = False,
) -> dict[str, Any]:
    """Run every requested relation (skipping finished ones) and write the per-relation files and summary."""
    record = RunRecord(dtype=config.dtype, device=device)
    root = data_root(root)
    relations = lama_data.get_relations(root, config.relations)
    method = get_method(config.method, "lama")
    backbone = backbone or load_backbone(config.backbone)
    backbone.model.to(device)
    config.backbone_kind = "causal" if backbone.is_causal else "masked"
    model = PromptedLM(backbone, None, train_backbone=method.trains_backbone, dtype=config.dtype)
    pristine = copy.deepcopy(backbone.model.state_dict()) if method.trains_backbone else None
    vocab_key = config.vocab_key or lama_data.matching_vocab_key(root, config.vocab, backbone.tokenizer)
    vocab = lama_data.allowed_vocab(root, config.vocab, backbone.tokenizer, tokenizer_key=vocab_key, space_before=True)
    out_dir = output_dir(results_root, backbone.name, config)
    runs_dir = runs_root / "lama" / backbone.name / f"{config.method}-{config.vocab}"

    per_relation: dict[str, dict[str, Any]] = {}
    for relation in tqdm(relations, desc=f"{config.method} {backbone.name}", disable=quiet, unit="rel"):
        path = out_dir / f"{relation.id}.json"
        done = _load_finished(path, config)
        if done is None:
            if pristine is not None:
                backbone.model.load_state_dict(pristine)
            done = _run_relation(relation, model, method, vocab, root, config, runs_dir / relation.id, record, quiet)
            write_result(path, done)
            shutil.rmtree(runs_dir / relation.id, ignore_errors=True)
        per_relation[relation.id] = done

    summary = _summary(per_relation, config, backbone, vocab, record)
    write_result(out_dir / "summary.json", summary)
    return summary


def _load_finished(path: Path, config: LamaConfig) -> Optional[dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if data.get("config_fingerprint") == config.fingerprint() else None


def _render(template: Template, facts, vocab, backbone: Backbone) -> list[Rendered]:
    tok = backbone.tokenizer
    return [
        template.render(tok, {"sub": f.sub_label}, causal=backbone.is_causal, target_ids=[vocab.id_of(f.obj_label)])
        for f in facts
    ]


def _subset(facts: list, limit: Optional[int], seed: int) -> list:
    if limit is None or len(facts) <= limit:
        return facts
    order = torch.randperm(len(facts), generator=torch.Generator().manual_seed(seed)).tolist()
    return [facts[i] for i in sorted(order[:limit])]


def _predict(model: PromptedLM, rendered: list[Rendered], vocab_ids: torch.Tensor, config: LamaConfig,
             desc: str, quiet: bool) -> tuple[list[int], list[int]]:
    """(predicted ids, gold ids): the argmax within the allowed vocabulary at the target position."""
    if not rendered:
        return [], []
    best = argmax_candidates(model, rendered, vocab_ids, batch_size=config.eval_batch_size, desc=desc, quiet=quiet)
    return vocab_ids[best].tolist(), [r.target_ids[0] for r in rendered]


def _run_relation(relation, model: PromptedLM, method: Method, vocab, root: Path, config: LamaConfig,
                  run_dir: Path, record: RunRecord, quiet: bool) -> dict[str, Any]:
    started = time.perf_counter()
    backbone = model.backbone
    template = method_template(method, relation, backbone, config)
    vocab_ids = vocab.tensor()
    test_kept, test_dropped = lama_data.filter_facts(lama_data.load_facts(root, relation, "test"), vocab)
    result: dict[str, Any] = {
        "schema": "repro.lama.relation/1",
        "config": config.to_dict(),
        "config_fingerprint": config.fingerprint(),
        "backbone_name": backbone.name,
        "relation": relation.id,
        "relation_label": relation.label,
        "template": str(template),
        "kept": len(test_kept),
        "dropped": len(test_dropped),
        "partial": relation.test_partial is not None,
        "partial_reason": relation.test_partial,
    }
    training: Optional[dict[str, Any]] = None
    if method.uses_encoder or method.trains_backbone:
        missing = [s for s in ("train", "dev") if not lama_data.has_split(root, relation, s)]
        if missing:
            reasons = "; ".join(f"{s}: {relation.split_status(s) or 'file not found'}" for s in missing)
            result.update(p_at_1=None, correct=None, skipped=f"cannot train without {' and '.join(missing)} ({reasons})")
            return record.stamp(result, wall_time_s=time.perf_counter() - started)
        model.encoder = _new_encoder(template, backbone, config).to(model.device) if method.uses_encoder else None
        training = _train_relation(relation, model, template, vocab, vocab_ids, root, config, run_dir, quiet)
    predicted, gold = _predict(model, _render(template, test_kept, vocab, backbone), vocab_ids, config,
                               f"{relation.id} test", quiet)
    result.update(p_at_1=metrics.p_at_1(predicted, gold) if gold else None,
                  correct=sum(int(p == g) for p, g in zip(predicted, gold)))
    if not gold:
        result["skipped"] = "no test fact has an object in the allowed vocabulary"
    if training is not None:
        result["training"] = training
    return record.stamp(result, wall_time_s=time.perf_counter() - started)


def _new_encoder(template: Template, backbone: Backbone, config: LamaConfig) -> PromptEncoder:
    set_seed(config.seed)
    n, dim = template.num_prompt_tokens, backbone.hidden_size
    if config.encoder == "lstm":
        return PromptEncoder(paper_lstm_config(n, dim))
    return PromptEncoder(PromptEncoderConfig(num_virtual_tokens=n, token_dim=dim))


def _train_relation(relation, model: PromptedLM, template: Template, vocab, vocab_ids: torch.Tensor, root: Path,
                    config: LamaConfig, run_dir: Path, quiet: bool) -> dict[str, Any]:
    backbone = model.backbone
    train_kept, train_dropped = lama_data.filter_facts(lama_data.load_facts(root, relation, "train"), vocab)
    dev_kept, dev_dropped = lama_data.filter_facts(lama_data.load_facts(root, relation, "dev"), vocab)
    train_facts = _subset(train_kept, config.max_train, config.seed)
    dev_facts = _subset(dev_kept, config.max_dev, config.seed + 1)
    train_items = _render(template, train_facts, vocab, backbone)
    dev_items = _render(template, dev_facts, vocab, backbone)
    pad = pad_id_of(backbone.tokenizer)

    def loss_fn(items: list[Rendered]) -> torch.Tensor:
        return model.loss(collate(items, pad))

    def evaluate() -> float:
        return metrics.p_at_1(*_predict(model, dev_items, vocab_ids, config, f"{relation.id} dev", True))

    outcome = train(model, train_items, loss_fn, evaluate, config.train, checkpoint_dir=run_dir,
                    desc=f"{relation.id} train", quiet=quiet)
    return {
        "n_train": len(train_items), "n_train_dropped": len(train_dropped),
        "n_dev": len(dev_items), "n_dev_dropped": len(dev_dropped),
        "best_dev_p_at_1": outcome.best_score, "best_epoch": outcome.best_epoch, "best_step": outcome.best_step,
        "steps": outcome.steps, "stopped_early": outcome.stopped_early, "history": outcome.history,
    }


def _summary(per_relation: dict[str, dict[str, Any]], config: LamaConfig, backbone: Backbone, vocab,
             record: RunRecord) -> dict[str, Any]:
    evaluated = {rid: r for rid, r in per_relation.items() if r.get("p_at_1") is not None}
    summary_metrics = metrics.lama_summary({rid: (r["correct"], r["kept"]) for rid, r in evaluated.items()})
    skipped = {rid: r["skipped"] for rid, r in per_relation.items() if r.get("skipped")}
    partial = sorted(rid for rid, r in per_relation.items() if r.get("partial"))
    notes = [
        "macro_p_at_1: mean of per-relation P@1 over the evaluated relations (the paper's tables); "
        "micro_p_at_1: share of all kept test facts predicted right",
        f"vocabulary: {vocab.description}",
    ]
    if partial:
        notes.append(f"test files rebuilt (partial) for {', '.join(partial)}: see the data root's PARTIAL.tsv")
    if skipped:
        notes.append(f"not evaluated: {', '.join(f'{k} ({v})' for k, v in skipped.items())}")
    return record.stamp({
        "schema": "repro.lama.summary/1",
        "config": config.to_dict(),
        "backbone_name": backbone.name,
        "backbone_source": backbone.source,
        "macro_p_at_1": summary_metrics["macro_p_at_1"],
        "micro_p_at_1": summary_metrics["micro_p_at_1"],
        "n_relations": len(evaluated),
        "n_facts": sum(r["kept"] for r in evaluated.values()),
        "relations": {
            rid: {"p_at_1": r.get("p_at_1"), "kept": r["kept"], "dropped": r["dropped"], "partial": r["partial"],
                  "partial_reason": r.get("partial_reason"), **({"skipped": r["skipped"]} if r.get("skipped") else {})}
            for rid, r in per_relation.items()
        },
        "partial": bool(partial),
        "notes": notes,
    })


# ---------------------------------------------------------------------------------------------- CLI
def register(subparsers) -> None:
    p = subparsers.add_parser("lama", help="LAMA knowledge probing (P@1)", description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="embedded name, local model dir or hub id")
    p.add_argument("--method", default="ptuning", choices=list(method_names("lama")))
    p.add_argument("--vocab", default="29k", choices=list(lama_data.VOCAB_STRATEGIES))
    p.add_argument("--relations", default=None, help="comma-separated relation ids (default: all 41)")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=34)
    p.add_argument("--encoder", default="lstm", choices=["lstm", "mlp"])
    p.add_argument("--template", default=None, help='P-tuning template, e.g. "(3, sub, 3, obj)"')
    p.add_argument("--mask-order", default="paper", choices=["paper", "code"])
    p.add_argument("--vocab-key", default=None, help="use this key of the vocab file for the tokenizer")
    p.add_argument("--dtype", default="", choices=["", "float32", "bfloat16"], help="default: the preset's")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's maximum epochs")
    p.add_argument("--max-steps", type=int, default=None, help="override the preset's maximum steps per relation")
    p.add_argument("--lr", type=float, default=None, help="override the learning rate (encoder, or LM for FT)")
    p.add_argument("--max-train", type=int, default=-1, help="train facts per relation (-1: preset's; 0: all)")
    p.add_argument("--max-dev", type=int, default=-1, help="dev facts per relation (-1: preset's; 0: all)")
    p.add_argument("--data-root", default=None, help="data root (default: $REPRO_DATA or ./data)")
    p.add_argument("--results", default=str(PROJECT_ROOT / "results"), help="results root")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli)


def config_from_args(args: argparse.Namespace) -> LamaConfig:
    preset = PRESETS.get(args.preset)
    if preset is None:
        raise ConfigError(f"unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}")
    train_config = preset.train
    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides["max_epochs"] = args.epochs
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.lr is not None:
        overrides["lr_encoder" if args.method == "ptuning" else "lr_backbone"] = args.lr
    if overrides:
        train_config = replace(train_config, **overrides)
    relations = [r.strip() for r in args.relations.split(",") if r.strip()] if args.relations else None
    return LamaConfig(
        backbone=args.backbone, method=args.method, vocab=args.vocab, relations=relations, preset=args.preset,
        seed=args.seed, encoder=args.encoder, template=args.template, mask_order=args.mask_order,
        vocab_key=args.vocab_key, dtype=args.dtype, train=train_config,
        max_train=None if args.max_train == 0 else args.max_train,
        max_dev=None if args.max_dev == 0 else args.max_dev,
    )


def _cli(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    summary = run_lama(config, root=args.data_root, results_root=Path(args.results), device=args.device,
                       quiet=args.quiet)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    lines = [f"LAMA {cfg['method']} on {cfg['backbone']} (vocab {cfg['vocab']}, preset {cfg['preset']})",
             f"{'relation':<10}{'P@1':>8}{'kept':>7}{'dropped':>9}"]
    for rid, r in summary["relations"].items():
        p = "skipped" if r.get("p_at_1") is None else f"{r['p_at_1']:.1f}"
        lines.append(f"{rid + ('*' if r['partial'] else ''):<10}{p:>8}{r['kept']:>7}{r['dropped']:>9}")
    lines.append(f"macro P@1 {summary['macro_p_at_1']:.2f} over {summary['n_relations']} relations; "
                 f"micro P@1 {summary['micro_p_at_1']:.2f} over {summary['n_facts']} facts "
                 "(* = test file rebuilt, see PARTIAL.tsv)")
    return "\n".join(lines)
