"""LAMA knowledge probing (the paper's Table 2): MP, FT, MP+FT and P-tuning, per relation, P@1.

`python -m repro lama --backbone smollm2-135m --method ptuning --vocab 29k --preset cpu`

Per relation: keep the facts whose object is one token of the allowed vocabulary, train where the method
trains (P-tuning: a fresh prompt encoder per relation on a frozen LM; FT/MP+FT: the LM itself, restored to
its pretrained weights before each relation), pick the best-dev epoch, and take test P@1 = argmax within the
allowed vocabulary. One `Pxx.json` per relation and a `summary.json` with macro (mean over relations, as the
paper's tables) and micro (over facts) P@1, rebuilt after every run from all finished relation files of the
same settings in the run folder (`runs/lama/<backbone>/<method>-<vocab>/` unless `--results` says otherwise).
Seeds (`--seeds 3`: 34, 35, 36): the authors' seed 34 writes its relation files in the run folder itself, any
other seed S in its `seed<S>/` folder inside it; the one `summary.json` holds every seed's macro and micro P@1
and their mean ± std (`statistics.stdev`, as SuperGLUE's), and per relation the mean, std and per-seed P@1.
A finished relation is reused only when every field that decides its numbers matches
(`repro.experiment.fingerprints`: config, threads, device kind, scorer and training code, data file hashes); otherwise it is
recomputed and the run says why. An interrupted relation resumes from its checkpoint in the run folder's
`.resume/<fingerprint>/` with the same numbers.

Scheduling (not part of what decides the numbers): methods that train a prompt encoder on a frozen LM
(P-tuning) train all pending relations jointly, each batch holding every relation's next facts, each relation's
prompt positions read from its own encoder (`repro.experiment.joint`); MP scores all relations' test facts in
one pass; methods that train the LM (FT, MP+FT) run one relation at a time. `--sequential` forces one relation
at a time for every method.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from repro import metrics
from repro.core import distributed
from repro.core.backbone import Backbone
from repro.core.template import Slot, Target, Template, Text
from repro.core.training import TrainConfig
from repro.evaluate_modules import describe as describe_metric
from repro.errors import ConfigError
from repro import fidelity as fid
from repro.experiment.config import RunConfig, fingerprint, resolve_limit
from repro.experiment.engine import (PristineLM, ReuseLog, Workspace, build_scorer, fit, keyed_dir, load_finished,
                                     subset)
from repro.experiment.fingerprints import data_hashes, fields_fingerprint
from repro.experiment.joint import Member, build_joint, can_train_jointly, fit_together, predict_together
from repro.methods import Method, Style
from repro.superglue_hub import check_source
from repro.results import (LAMA_DEFAULT_SEED, LAMA_RELATION_SCHEMA, LAMA_SUMMARY_SCHEMA, RunRecord, seed_folder,
                           write_result)
from repro.tasks import lama as lama_data
from repro.tasks.base import Example
from repro.tasks.lama import Lama

@dataclass(frozen=True)
class Preset:
    """A named schedule. `paper`: the authors' LAMA settings (fp32, up to 100 epochs, early stopping).
    `cpu`: 41 relations, MP and P-tuning, in under 10 minutes on 2 CPU cores (all relations' encoders train in
    one joint pass): 32 steps of 16 facts per relation, the encoder's learning rate raised to 5e-4 for so few
    steps with a linear warm-up over the first quarter, each encoder's gradient clipped to norm 1 (the random
    prompts' first gradients are hundreds of times the later ones; unclipped, Adam's second moment keeps their
    size and the steps after them shrink, so many encoders stall at a loss near 9-14), dev P@1 on 64 facts
    every 16 steps, the frozen LM in bf16, and PEFT's MLP encoder instead of the paper's LSTM (in 32 steps the
    LSTM's prompts stall on more relations). Chosen on the mean dev P@1 of three seeds only (REPRODUCING.md,
    `results/lama/smollm2-135m/cpu_schedule_search.json`)."""

    train: TrainConfig
    encoder: str  # the prompt encoder a run takes when none is given (`RunConfig.preset_encoder`)
    dtype: str
    max_train: Optional[int]  # facts per relation used for training (None: all)
    max_dev: Optional[int]  # facts per relation used for model selection (None: all)
    eval_batch_size: int  # rows per evaluation batch, at most (batches also stop at inference.EVAL_TOKENS tokens)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        TrainConfig(optimizer="adam", lr_encoder=1e-5, lr_backbone=1e-5, weight_decay=5e-4, schedule="exponential",
                    gamma=0.98, batch_size=8, max_epochs=100, patience=20, seed=34),
        encoder="lstm", dtype="float32", max_train=None, max_dev=None, eval_batch_size=512,
    ),
    "cpu": Preset(
        TrainConfig(optimizer="adam", lr_encoder=5e-4, lr_backbone=1e-5, weight_decay=5e-4, schedule="linear",
                    warmup_ratio=0.25, batch_size=16, max_epochs=100, max_steps=32, eval_every_steps=16,
                    max_grad_norm=1.0, patience=None, seed=34),
        encoder="mlp", dtype="bfloat16", max_train=None, max_dev=64, eval_batch_size=512,
    ),
}


@dataclass
class LamaConfig(RunConfig):
    """One LAMA run (one backbone, method and vocabulary; every requested relation). Serialised next to its
    results, so the same config reruns the same numbers."""

    BENCHMARK: ClassVar[str] = "lama"
    PRESETS: ClassVar[Mapping[str, Preset]] = PRESETS
    DEFAULT_SEEDS: ClassVar[tuple[int, ...]] = (LAMA_DEFAULT_SEED,)  # the authors' LAMA seed

    vocab: str = field(default="29k", metadata={"help": "29k | 34k | full", "choices": lama_data.VOCAB_STRATEGIES})
    relations: Optional[list[str]] = field(default=None, metadata={"help": "relation ids (None: all 41)"})
    template: Optional[str] = field(default=None, metadata={
        "help": 'P-tuning template, e.g. "(3, sub, 3, obj)" (None: the paper\'s)'})
    mask_order: str = field(default="", metadata={
        "help": "masked LMs: paper (sub before [MASK]) | code (the authors' BERT code: [MASK] first); empty: the "
                "fidelity's (its item lama_mask_order)", "choices": ("", "paper", "code")})
    vocab_key: Optional[str] = field(default=None, metadata={"help": "key of the vocab file for this tokenizer"})
    backbone_kind: str = field(default="", metadata={"help": "masked | causal: filled in from the loaded backbone"})

    def __post_init__(self) -> None:
        if self.vocab not in lama_data.VOCAB_STRATEGIES:
            raise ConfigError(f"unknown vocab {self.vocab!r}; valid: {', '.join(lama_data.VOCAB_STRATEGIES)}")
        if self.mask_order not in ("", "paper", "code"):
            raise ConfigError(f"unknown mask order {self.mask_order!r}; valid: paper, code")
        if self.mask_order:  # the older spelling of the fidelity item
            self.fidelity_items = {**fid.parse_items(self.fidelity_items), "lama_mask_order": self.mask_order}
        super().__post_init__()
        self.mask_order = self.choices.lama_mask_order

    def apply_preset(self, preset: Preset) -> None:
        self.dtype = self.dtype or preset.dtype
        train = self.train
        if train is None:  # the preset's learning rates; fidelity item lama_lm_lr scales the LM's (LAMA/cli.py: 5e-6)
            train = replace(preset.train, lr_backbone=preset.train.lr_backbone * fid.lama_lm_lr_factor(self.choices))
        self.train = replace(train, seed=self.seed)
        self.max_train = resolve_limit(self.max_train, preset.max_train, "max_train")
        self.max_dev = resolve_limit(self.max_dev, preset.max_dev, "max_dev")
        self.eval_batch_size = self.eval_batch_size or preset.eval_batch_size

    @property
    def seed(self) -> int:
        """The seed of a one-seed config (`for_seed`); of a several-seed one, its first."""
        return self.seeds[0]

    def for_seed(self, seed: int) -> "LamaConfig":
        """The same settings with one seed: what one seed's relation files are computed (and fingerprinted) with,
        the config a command with that one seed builds (`mask_order` left for `fidelity_items` to carry, which
        holds it when it was given)."""
        return replace(self, seeds=[seed], mask_order="")

    def default_encoder_hidden(self, dim: int) -> int:
        """The authors' LAMA encoder: LSTM of half the embedding size per direction; MLP as wide as it."""
        return max(1, dim // 2) if self.encoder == "lstm" else dim

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(task="lama", seed=self.seed)  # `seed`: the result files' key before seeds were a list
        return data

    # What a zero-shot method (MP) never reads: a change of the training schedule must not mark its results stale.
    UNUSED_WITHOUT_TRAINING: ClassVar[tuple[str, ...]] = ("train", "max_train", "max_dev", "encoder", "encoder_hidden")

    def fingerprint_data(self) -> dict[str, Any]:
        """The config's part of what decides a relation's numbers (the relation list does not; nor, for a
        zero-shot method, the training settings)."""
        data = super().fingerprint_data()
        data.pop("relations")
        data.pop("seed")
        if self.zero_shot:
            for name in self.UNUSED_WITHOUT_TRAINING:
                data.pop(name, None)
        return data

    def fingerprint(self) -> str:
        return fingerprint(self.fingerprint_data())


def ptuning_template(backbone: Backbone, config: LamaConfig) -> Template:
    """The paper's templates: (3, sub, 3, obj, 3) for masked LMs, (3, sub, 3, obj) for causal LMs."""
    if config.template:
        return Template.parse(config.template, masked=not backbone.is_causal)
    if backbone.is_causal:
        return Template.parse("[P*3] {sub} [P*3] [MASK]")
    if config.choices.lama_mask_order == "code":  # LAMA/p_tuning/modeling.py get_query: [MASK] before the subject
        return Template.parse("[P*3] [MASK] [P*3] {sub} [P*3]")
    return Template.parse("[P*3] {sub} [P*3] [MASK] [P*3]")


def method_template(method: Method, relation: lama_data.Relation, backbone: Backbone, config: LamaConfig) -> Template:
    """P-tuning's template from the run's choices; the other styles' from the task's declared patterns (the
    manual prompt as the authors' code builds it under fidelity item `lama_query=authors`)."""
    if method.style is Style.PTUNING:
        return ptuning_template(backbone, config)
    template = Lama(relation).template(method.style.value)
    if method.style is Style.MANUAL and config.choices.lama_query == "authors":
        return authors_manual_query(template, causal=backbone.is_causal)
    return template


def authors_manual_query(template: Template, *, causal: bool) -> Template:
    """The manual prompt as THUDM/P-tuning LAMA/p_tuning/modeling.py `get_query` builds it: the tokenizer reads
    `' ' + prompt` (a space before the first word, which byte-level BPE keeps as 'Ġ'), and for GPT-style models
    the prompt is cut where [Y] starts, which keeps the space before [Y]: the query ends in a lone space token
    and the prediction is read after it."""
    parts = list(template.parts)
    first = parts[0]
    if isinstance(first, Slot):
        parts[0] = Slot(first.name, first.shortenable, space_before=True)
    elif isinstance(first, Text):
        parts[0] = Text(" " + first.text)
    if causal:
        at = next(i for i, p in enumerate(parts) if isinstance(p, Target))
        if parts[at].space_before:
            parts.insert(at, Text(" "))
    return Template(tuple(parts), source=f"{template.source} (authors' query)")


def run_name(config: LamaConfig) -> str:
    """The folder name of a run, under <results>/lama/<backbone>/: method, variant (`RunConfig.variant`), vocabulary."""
    return "-".join(filter(None, (config.method, config.variant, config.vocab)))


def output_dir(results_root: Path, backbone_name: str, config: LamaConfig) -> Path:
    return results_root / "lama" / backbone_name / run_name(config)


def run_lama(config: LamaConfig, *, backbone: Optional[Backbone] = None, **where: Any) -> dict[str, Any]:
    """Run every requested relation for every seed (reusing finished ones whose fingerprint fields all match,
    saying why the others are recomputed), write the per-relation files, and rebuild the summary from every
    finished relation file of these settings in the run folder, every seed's (a subset run never shrinks it).
    `where`: the `Workspace` fields (root, results_root, runs_root, device, threads, quiet)."""
    ws = Workspace(**where)
    check_source(ws.data_source, config.BENCHMARK)
    root, backbone, record = ws.open(config, backbone)
    config.backbone_kind = "causal" if backbone.is_causal else "masked"
    vocab_key = config.vocab_key or lama_data.matching_vocab_key(root, config.vocab, backbone.tokenizer)
    vocab = lama_data.allowed_vocab(root, config.vocab, backbone.tokenizer, tokenizer_key=vocab_key, space_before=True)
    out_dir = output_dir(ws.results_root, backbone.name, config)
    pristine = PristineLM(backbone, config.method_entry)
    seeds = config.seeds
    if config.zero_shot and len(seeds) > 1:  # nothing random: every seed would score the same
        print(f"{config.method} trains nothing: evaluated once, with seed {seeds[0]}", file=sys.stderr)
        seeds = seeds[:1]
    computed = {seed: _run_seed(config.for_seed(seed), ws, root, backbone, pristine, vocab, record,
                                seed_folder(out_dir, seed))
                for seed in seeds}

    everything = {r.id: r for r in lama_data.get_relations(root)}
    per_seed: dict[int, dict[str, dict[str, Any]]] = {}
    excluded: dict[str, str] = {}
    for seed in seeds_in_folder(out_dir, seeds):
        seed_config = config.for_seed(seed)
        found, left_out = finished_in_folder(
            seed_folder(out_dir, seed), everything, computed.get(seed, {}),
            lambda rid: fields_fingerprint(relation_fields(ws, root, seed_config, everything[rid])))
        if found:
            per_seed[seed] = found
        excluded.update({(seed_folder(Path(), seed) / rid).as_posix(): why for rid, why in left_out.items()})
    summary = _summary(per_seed, list(everything), config, backbone, vocab, record, excluded)
    write_result(out_dir / "summary.json", summary)
    return summary


DEFAULT_SEED = LamaConfig.DEFAULT_SEEDS[0]


def seeds_in_folder(run_dir: Path, also: Sequence[int] = ()) -> list[int]:
    """The seeds with relation files in a run folder (the default seed's at its top, `seed<S>/` folders), and
    `also` (this run's), in ascending order."""
    seeds = set(also)
    if any(p.name != "summary.json" for p in run_dir.glob("*.json")):
        seeds.add(DEFAULT_SEED)
    seeds.update(int(p.name[4:]) for p in run_dir.glob("seed*") if p.is_dir() and p.name[4:].isdigit())
    return sorted(seeds)


def _run_seed(config: LamaConfig, ws: Workspace, root: Path, backbone: Backbone, pristine: PristineLM,
              vocab: lama_data.AllowedVocab, record: RunRecord, out_dir: Path) -> dict[str, dict[str, Any]]:
    """One seed's relations (`config` has one seed) into `out_dir`: reused or computed; their results by id.
    `pristine`: the LM's pretrained weights, taken once per command (a trained LM is restored before each unit)."""
    relations = lama_data.get_relations(root, config.relations)
    method = config.method_entry
    quiet = ws.quiet
    state = ws.state_dir(out_dir)

    def fields_of(relation: lama_data.Relation) -> dict[str, Any]:
        return relation_fields(ws, root, config, relation)

    log = ReuseLog("relation", out_dir)
    per_relation: dict[str, dict[str, Any]] = {}
    pending: list[RelationUnit] = []
    for relation in relations:
        fields = fields_of(relation)
        done = log.finished(relation.id, out_dir / f"{relation.id}.json", fields, "config_fingerprint",
                            LAMA_RELATION_SCHEMA)
        if done is None:
            pending.append(RelationUnit(relation, method, backbone, vocab, root, config, state / relation.id, quiet,
                                        fields))
        else:
            per_relation[relation.id] = done
    log.announce(len(relations))

    def finish(unit: RelationUnit, result: dict[str, Any], seconds: float) -> None:
        """Write a relation's result as soon as it is known (a rerun skips it); a file of other settings that
        it replaces is moved aside, not lost."""
        done = record.stamp(result, wall_time_s=seconds)
        path = out_dir / f"{unit.relation.id}.json"
        _set_aside(path, state / SUPERSEDED_DIR)
        write_result(path, done)
        _remove_state(unit.checkpoint_dir)
        per_relation[unit.relation.id] = done

    shares_lm = not method.trains_backbone and not config.sequential and pending
    desc = f"{config.method} {backbone.name}" + (f" seed {config.seed}" if config.seed != DEFAULT_SEED else "")
    if shares_lm and method.zero_shot:
        _evaluate_together(pending, backbone, config, finish)
    elif shares_lm and can_train_jointly(method, config.train):
        joint_fields = {**ws.unit_fields(config.fingerprint_data(), {}),
                        "relations": {r.id: fields_fingerprint(fields_of(r)) for r in relations}}
        _train_together(pending, backbone, config, keyed_dir(state / JOINT_DIR, joint_fields), finish, desc)
    else:
        for unit in tqdm(pending, desc=desc, disable=quiet, unit="rel"):
            pristine.reset()
            finish(unit, *unit.run())
    return per_relation


JOINT_DIR = "_joint"  # under the run's resume state: the checkpoint of a joint pass (keyed by its fields)
SUPERSEDED_DIR = "superseded"  # under the run's resume state: relation files replaced by a run of other settings


def relation_fields(ws: Workspace, root: Path, config: LamaConfig, relation: lama_data.Relation) -> dict[str, Any]:
    """Every field that decides a relation's numbers (its file's `config_fingerprint` is their hash); `config`
    with `backbone_kind` filled in. Also what `python -m repro sweep --plan` compares."""
    return ws.unit_fields(config.fingerprint_data(), data_hashes(root, relation_files(relation, config)))


def relation_files(relation: lama_data.Relation, config: LamaConfig) -> list[str]:
    """The data files a relation's numbers depend on (relative to the data root): the relation list (manual
    prompts), the vocabulary file, its test facts, and its training and dev facts where the method trains."""
    splits = ("test", "train", "dev") if config.method_entry.trains else ("test",)
    files = [lama_data.RELATIONS_FILE] + [lama_data.relation_file(relation, s) for s in splits]
    if config.vocab in lama_data.VOCAB_FILES:
        files.append(lama_data.VOCAB_FILES[config.vocab])
    return files


def finished_in_folder(out_dir: Path, relations: Mapping[str, lama_data.Relation], computed: dict[str, dict[str, Any]],
                       expected: Callable[[str], str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every finished relation file in the run folder whose fingerprint is the one these settings give it (this
    run's, and earlier runs' of the same settings), in the data's relation order; and the files left out, why."""
    found = dict(computed)
    excluded: dict[str, str] = {}
    for path in sorted(out_dir.glob("*.json")):
        rid = path.stem
        if rid in found or path.name == "summary.json":
            continue
        data = load_finished(path, "schema", LAMA_RELATION_SCHEMA)
        if data is None:
            continue
        if rid not in relations:
            excluded[rid] = "not a relation of this data root"
        elif data.get("config_fingerprint") != expected(rid):
            excluded[rid] = "computed with other settings or data"
        else:
            found[rid] = data
    return {rid: found[rid] for rid in relations if rid in found}, excluded


def _set_aside(path: Path, aside: Path) -> None:
    """Move a result file about to be replaced into `aside/<its fingerprint>/` (data-parallel: by the main
    process, which then writes the new one; another process moving it could take the new one away)."""
    old = load_finished(path, "schema", LAMA_RELATION_SCHEMA)
    if old is not None and distributed.is_main():
        target = aside / str(old.get("config_fingerprint"))
        target.mkdir(parents=True, exist_ok=True)
        path.replace(target / path.name)


def _remove_state(path: Path) -> None:
    """Remove a finished unit's resume folder, and the two folders above it when that leaves them empty (the
    relation's or the joint pass's, then the run folder's `.resume/`)."""
    shutil.rmtree(path, ignore_errors=True)
    for parent in (path.parent, path.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            return


def _shared_pass(n_relations: int, seconds: float) -> dict[str, Any]:
    """What a result computed in a pass shared by several relations records about it (its `wall_time_s` is its
    share: the pass's seconds so far over its relations)."""
    return {"relations": n_relations, "wall_time_s": round(seconds, 2)}


def _evaluate_together(units: list["RelationUnit"], backbone: Backbone, config: LamaConfig, finish) -> None:
    """A zero-shot method (MP): every relation's test facts in one pass over the frozen LM (one allowed vocabulary,
    each relation's own manual template)."""
    started = time.perf_counter()
    results = [u.header() for u in units]
    members = [Member(u.relation.id, u.task(), u.template(), u.method.style.value, config.seed) for u in units]
    joint = build_joint(members, units[0].method, backbone, config, max_length=None,
                        options=units[0].scorer_options(), quiet=units[0].quiet)
    tests = [u.examples("test")[0] for u in units]
    predicted = predict_together(joint.scorers, tests, desc="test")
    seconds = time.perf_counter() - started
    for unit, result, test, preds in zip(units, results, tests, predicted):
        unit.complete(result, test, preds, None)
        result["shared_pass"] = _shared_pass(len(units), seconds)
        finish(unit, result, seconds / len(units))


def _train_together(units: list["RelationUnit"], backbone: Backbone, config: LamaConfig, checkpoint_dir: Path,
                    finish, desc: str) -> None:
    """P-tuning on a frozen LM: every trainable relation's encoder in one joint pass (`repro.experiment.joint`);
    a relation is tested and written as soon as it finishes (relations that finish together share the test pass)."""
    started = time.perf_counter()
    ready: list[tuple[RelationUnit, dict[str, Any]]] = []
    for unit in units:
        result = unit.header()
        reason = unit.untrainable()
        if reason is not None:
            result.update(p_at_1=None, correct=None, skipped=reason)
            finish(unit, result, 0.0)
        else:
            ready.append((unit, result))
    if not ready:
        return
    quiet = ready[0][0].quiet
    members = [Member(u.relation.id, u.task(), u.template(), u.method.style.value, config.seed) for u, _ in ready]
    joint = build_joint(members, ready[0][0].method, backbone, config, max_length=None,
                        options=ready[0][0].scorer_options(), quiet=quiet)
    data = [u.train_dev() for u, _ in ready]
    tests = [u.examples("test")[0] for u, _ in ready]

    def on_done(indices: list[int], fitted: list[dict[str, Any]]) -> None:
        predicted = predict_together([joint.scorers[i] for i in indices], [tests[i] for i in indices], desc="test")
        seconds = time.perf_counter() - started
        for i, fit_record, preds in zip(indices, fitted, predicted):
            unit, result = ready[i]
            unit.complete(result, tests[i], preds, unit.training_record(fit_record, data[i]))
            result["shared_pass"] = _shared_pass(len(ready), seconds)
            finish(unit, result, seconds / len(ready))

    fit_together(joint, members, [d.train for d in data], [d.dev for d in data], config.train,
                 checkpoint_dir=checkpoint_dir, on_done=on_done,
                 desc=f"{desc} ({len(ready)} relations jointly)", quiet=quiet,
                 selection=config.choices.selection)
    _remove_state(checkpoint_dir)


@dataclass
class TrainDev:
    """A relation's training and model-selection facts, and how many of each were dropped (object not allowed)."""

    train: list[Example]
    dev: list[Example]
    train_dropped: int
    dev_dropped: int


@dataclass
class RelationUnit:
    """One relation: its facts through the engine (train where the method trains, select on dev, test P@1)."""

    relation: lama_data.Relation
    method: Method
    backbone: Backbone
    vocab: lama_data.AllowedVocab
    root: Path
    config: LamaConfig
    state_dir: Path  # this relation's resume state: one folder per fingerprint of `fields`
    quiet: bool
    fields: dict[str, Any]  # what decides its numbers (`Workspace.unit_fields`)
    _train_dev: Optional[TrainDev] = field(default=None, init=False, repr=False)

    @property
    def checkpoint_dir(self) -> Path:
        return self.state_dir / fields_fingerprint(self.fields)

    def examples(self, split: str) -> tuple[list[Example], int]:
        """(kept examples, dropped count): facts whose object is an allowed word."""
        kept, dropped = lama_data.filter_facts(lama_data.load_facts(self.root, self.relation, split), self.vocab)
        return Lama.facts_as_examples(kept, split), len(dropped)

    def template(self) -> Template:
        return method_template(self.method, self.relation, self.backbone, self.config)

    def task(self) -> Lama:
        return Lama(self.relation, self.vocab)

    def header(self) -> dict[str, Any]:
        """The result's fields known before any training or scoring."""
        relation, config = self.relation, self.config
        test, test_dropped = self.examples("test")
        return {
            "schema": LAMA_RELATION_SCHEMA,
            "config": config.to_dict(),
            "config_fingerprint": fields_fingerprint(self.fields),
            "fingerprint_fields": self.fields,
            "backbone_name": self.backbone.name,
            "relation": relation.id,
            "relation_label": relation.label,
            "template": str(self.template()),
            "kept": len(test),
            "dropped": test_dropped,
            "partial": relation.test_partial is not None,
            "partial_reason": relation.test_partial,
        }

    def untrainable(self) -> Optional[str]:
        """Why a trained method cannot run on this relation (a split missing, or no fact of a split has its object
        in the allowed vocabulary: nothing to train on or to select with), else None."""
        if not self.method.trains:
            return None
        relation = self.relation
        missing = [s for s in ("train", "dev") if not lama_data.has_split(self.root, relation, s)]
        if missing:
            reasons = "; ".join(f"{s}: {relation.split_status(s) or 'file not found'}" for s in missing)
            return f"cannot train without {' and '.join(missing)} ({reasons})"
        data = self.train_dev()
        empty = [s for s, kept in (("train", data.train), ("dev", data.dev)) if not kept]
        if empty:
            return (f"cannot train: no {' and no '.join(empty)} fact has its object in the allowed vocabulary "
                    f"({self.vocab.description})")
        return None

    def complete(self, result: dict[str, Any], test: list[Example], predicted: list[int],
                 training: Optional[dict[str, Any]]) -> None:
        """Add test P@1 (and the training record) to `result`."""
        task = self.task()
        gold = task.gold_ids(test)
        result.update(p_at_1=task.score(test, predicted)["p_at_1"] if gold else None,
                      correct=sum(int(p == g) for p, g in zip(predicted, gold)))
        if not gold:
            result["skipped"] = "no test fact has an object in the allowed vocabulary"
        if training is not None:
            result["training"] = training

    def run(self) -> tuple[dict[str, Any], float]:
        """This relation alone: (its result, seconds it took)."""
        started = time.perf_counter()
        config = self.config
        result = self.header()
        reason = self.untrainable()
        if reason is not None:
            result.update(p_at_1=None, correct=None, skipped=reason)
            return result, time.perf_counter() - started
        task, template = self.task(), self.template()
        scorer = build_scorer(task, self.method, self.backbone, template, self.method.style.value, config, config.seed,
                              max_length=None, quiet=self.quiet, options=self.scorer_options())
        training = self.train(scorer, task) if self.method.trains else None
        test = self.examples("test")[0]
        self.complete(result, test, scorer.predict(test, desc=f"{self.relation.id} test"), training)
        return result, time.perf_counter() - started

    def scorer_options(self) -> dict[str, Any]:
        """The vocab scorer's fidelity option: where the GPT loss trains (`label_shift`)."""
        return {"label_shift": self.config.choices.label_shift}

    def train_dev(self) -> TrainDev:
        """The seeded training and dev subsets of the preset (max_train, max_dev); read once per unit
        (`untrainable` checks them before training uses them)."""
        if self._train_dev is None:
            config = self.config
            train_kept, train_dropped = self.examples("train")
            dev_kept, dev_dropped = self.examples("dev")
            self._train_dev = TrainDev(subset(train_kept, config.max_train, config.seed),
                                       subset(dev_kept, config.max_dev, config.seed + 1), train_dropped, dev_dropped)
        return self._train_dev

    def train(self, scorer, task: Lama) -> dict[str, Any]:
        data = self.train_dev()
        fitted = fit(scorer, task, data.train, data.dev, self.config.train, self.config.seed,
                     checkpoint_dir=keyed_dir(self.state_dir, self.fields), desc=f"{self.relation.id} train", quiet=self.quiet,
                     selection=self.config.choices.selection)
        return self.training_record(fitted, data)

    @staticmethod
    def training_record(fitted: dict[str, Any], data: TrainDev) -> dict[str, Any]:
        """What a relation's result records about its training (from `engine.fit`'s record)."""
        return {
            "n_train": fitted["n_train"], "n_train_dropped": data.train_dropped,
            "n_dev": fitted["n_dev"], "n_dev_dropped": data.dev_dropped,
            "best_dev_p_at_1": fitted["best_dev"], "best_epoch": fitted["best_epoch"], "best_step": fitted["best_step"],
            "steps": fitted["steps"], "stopped_early": fitted["stopped_early"], "history": fitted["history"],
        }


def _summary(per_seed: dict[int, dict[str, dict[str, Any]]], data_order: Sequence[str], config: LamaConfig,
             backbone: Backbone, vocab, record: RunRecord, excluded: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The run folder's summary over its seeds (`counted_seeds`): per seed macro and micro P@1, their mean ± std,
    and per relation the mean, std and per-seed P@1 (one seed: its numbers, std 0)."""
    counted, relation_ids = counted_seeds(per_seed, data_order)
    per_relation = {rid: next(rels[rid] for rels in per_seed.values() if rid in rels) for rid in relation_ids}
    by_seed = {seed: metrics.lama_summary({rid: (r["correct"], r["kept"]) for rid, r in per_seed[seed].items()
                                           if r.get("p_at_1") is not None})
               for seed in counted}
    totals = {key: metrics.mean_std([by_seed[s][key] for s in counted]) for key in ("macro_p_at_1", "micro_p_at_1")}
    evaluated = {rid: r for rid, r in per_relation.items() if r.get("p_at_1") is not None}
    skipped = {rid: r["skipped"] for rid, r in per_relation.items() if r.get("skipped")}
    partial = sorted(rid for rid, r in per_relation.items() if r.get("partial"))
    notes = [
        "macro_p_at_1: mean of per-relation P@1 over the evaluated relations (the paper's tables); "
        "micro_p_at_1: share of all kept test facts predicted right",
        f"vocabulary: {vocab.description}",
    ]
    if len(counted) > 1:
        notes.append(f"seeds {', '.join(map(str, counted))}: macro and micro P@1 are the mean over seeds of each "
                     "seed's value, std their sample standard deviation; per relation likewise")
    left_out = [s for s in per_seed if s not in counted]
    if left_out:
        notes.append("seeds left out (fewer finished relations than the others): "
                     + ", ".join(f"{s} ({len(per_seed[s])} relations)" for s in left_out))
    if partial:
        notes.append(f"test files rebuilt (partial) for {', '.join(partial)}: see the data root's PARTIAL.tsv")
    if skipped:
        notes.append(f"not evaluated: {', '.join(f'{k} ({v})' for k, v in skipped.items())}")
    if excluded:
        notes.append("relation files in this folder left out of the summary: "
                     + ", ".join(f"{k} ({v})" for k, v in excluded.items()))

    def relation_entry(rid: str, r: dict[str, Any]) -> dict[str, Any]:
        entry = {"p_at_1": None, "kept": r["kept"], "dropped": r["dropped"], "partial": r["partial"],
                 "partial_reason": r.get("partial_reason")}
        if r.get("skipped"):
            return {**entry, "skipped": r["skipped"]}
        values = {str(s): per_seed[s][rid]["p_at_1"] for s in counted}
        mean, std = metrics.mean_std(list(values.values()))
        return {**entry, "p_at_1": mean, "p_at_1_std": std, "seeds": values}

    return record.stamp({
        "schema": LAMA_SUMMARY_SCHEMA,
        "config": {**config.to_dict(), "seeds": counted, "seed": counted[0] if counted else config.seed,
                   "relations": list(per_relation)},
        "backbone_name": backbone.name,
        "backbone_source": backbone.source,
        "macro_p_at_1": totals["macro_p_at_1"][0],
        "micro_p_at_1": totals["micro_p_at_1"][0],
        "std": {key: value[1] for key, value in totals.items()},
        "seeds": {str(s): {key: by_seed[s][key] for key in totals} for s in counted},
        "metric": describe_metric("lama", "default"),
        "n_relations": len(evaluated),
        "n_facts": sum(r["kept"] for r in evaluated.values()),
        "relations": {rid: relation_entry(rid, r) for rid, r in per_relation.items()},
        "partial": bool(partial),
        "notes": notes,
    })


def counted_seeds(per_seed: Mapping[int, Mapping[str, dict[str, Any]]],
                  data_order: Sequence[str]) -> tuple[list[int], list[str]]:
    """(the seeds a summary averages, its relations in `data_order`). The relations: every one finished by some
    seed; the seeds: those that finished all of them. When no seed did (subset runs of different relations),
    the relations of the seed with the most, and the seeds that finished those. A seed's macro P@1 is over its
    own relations, so only seeds over the same relations are averaged."""
    if not per_seed:
        return [], []
    union = set().union(*per_seed.values())
    covering = [s for s, rels in sorted(per_seed.items()) if set(rels) >= union]
    if not covering:
        union = set(max(sorted(per_seed.items()), key=lambda item: len(item[1]))[1])
        covering = [s for s, rels in sorted(per_seed.items()) if set(rels) >= union]
    return covering, [rid for rid in data_order if rid in union]


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a terminal table; with several seeds, mean ± std per relation and for the totals."""
    cfg = summary["config"]
    seeds = list(summary.get("seeds") or [])
    several = len(seeds) > 1
    std = summary.get("std") or {}

    def value(mean: Optional[float], spread: Optional[float], digits: int = 1) -> str:
        if mean is None:
            return "skipped"
        return f"{mean:.{digits}f} ± {spread:.{digits}f}" if several and spread is not None else f"{mean:.{digits}f}"

    lines = [f"LAMA {cfg['method']} on {cfg['backbone']} (vocab {cfg['vocab']}, preset {cfg['preset']}"
             + (f", seeds {', '.join(seeds)}" if several else "") + ")",
             f"{'relation':<10}{'P@1':>{14 if several else 8}}{'kept':>7}{'dropped':>9}"]
    for rid, r in summary["relations"].items():
        cell = value(r.get("p_at_1"), r.get("p_at_1_std"))
        lines.append(f"{rid + ('*' if r['partial'] else ''):<10}{cell:>{14 if several else 8}}{r['kept']:>7}{r['dropped']:>9}")
    macro = value(summary["macro_p_at_1"], std.get("macro_p_at_1"), 2)
    micro = value(summary["micro_p_at_1"], std.get("micro_p_at_1"), 2)
    lines.append(f"macro P@1 {macro} over {summary['n_relations']} relations; micro P@1 {micro} over "
                 f"{summary['n_facts']} facts" + (" (mean ± std over seeds)" if several else "")
                 + " (* = test file rebuilt, see PARTIAL.tsv)")
    return "\n".join(lines)
