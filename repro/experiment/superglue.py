"""The SuperGLUE engine: settings, seeds, data, per-seed training and evaluation, results, resume.

`python -m repro superglue --task cb --setting fewshot --backbone smollm2-135m --method ptuning --preset cpu`

One run = one training task, setting, backbone, method and a list of seeds. Per seed: the LM is restored to
its pretrained weights, a fresh prompt encoder (P-tuning) or head (CLS-FT) is built from that seed, the
model trains on the setting's training set with model selection on its dev set (few-shot: FewGLUE's 32
examples and dev32; supervised: the full training set, with early stopping on the SuperGLUE dev set, as the
paper did), the best-dev state is restored and evaluated on the SuperGLUE dev set (`val.jsonl`). Zero-shot
methods (MP) train nothing: they are evaluated once, with the first seed's number, and the results say so.

AX-b and AX-g are evaluated by the RTE model of the same setting, method, pattern and seed: an RTE run
writes all three results, and `--task axb` trains on RTE (or reuses RTE's finished seeds).

The engine knows nothing of a task's fields or answer space: the task adapter (`tasks/`) gives examples,
patterns and metrics; the scorer registered for the task's kind (`repro.scorers.base`) renders,
computes the loss and predicts.

Resume: each finished seed is a small JSON in the run folder's resume state
(`<results>/superglue/<setting>/<backbone>/<method>/.resume/<task>/<fingerprint>/`), keyed by every field that
decides its numbers (`repro.experiment.fingerprints`: config, threads, device kind, scorer and training code, sha256 of the
data files read); a rerun reuses it and says so, a run of other settings uses another folder and says why.
A task's result holds every finished seed of its settings and pattern there, so a run of fewer seeds never
shrinks it. With `checkpoint` on, an interrupted seed also
resumes from its last dev check (`repro.core.training`), or from its last timed checkpoint with
`--checkpoint-minutes N` (a supervised epoch can outlast a session), with the same numbers.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from tqdm.auto import tqdm

from repro import checkpoint, superglue_hub, validate
from repro.core import distributed
from repro.core.backbone import Backbone
from repro.core.template import Template
from repro.core.training import rng_state, set_rng_state, set_seed
from repro.data import data_root, partial_status, require
from repro.evaluate_modules import describe as describe_metric
from repro.errors import ConfigError
from repro.experiment.engine import (PristineLM, ReuseLog, Workspace, build_scorer, evaluate, fit, keyed_dir,
                                     load_finished, subset)
from repro.experiment.fingerprints import data_hashes, fields_fingerprint
from repro.experiment.joint import Member, build_joint, can_train_jointly, fit_together, predict_together
from repro.experiment.superglue_config import SuperGLUEConfig
from repro.methods import Method
from repro.metrics import mean_std
from repro.results import SUPERGLUE_SCHEMA, SUPERGLUE_SEED_SCHEMA, provenance, write_result
from repro.tasks.base import Example, Task
from repro.tasks.registry import get_task

SUBSET_SEED = 0  # evaluation subsets are the same for every seed, method and backbone


# ------------------------------------------------------------------------------------------------ data
@dataclass
class EvalSet:
    task: Task
    examples: list[Example]
    path: str  # relative to the data root
    n_total: int


@dataclass
class RunData:
    """The examples of one run: training and model selection (trained methods only) and the evaluation sets."""

    train: list[Example]
    dev: list[Example]
    evals: list[EvalSet]
    notes: list[str] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)


def load_data(config: SuperGLUEConfig, train_task: Task, eval_tasks: Sequence[Task], root: Path,
              source: str = "local") -> RunData:
    """Read what the run needs; a missing file is a DataError that names it and the fetch command. `source`
    `hub`: the SuperGLUE files from the hub's super_glue dataset (`repro.superglue_hub`), FewGLUE's from `root`."""
    notes: list[str] = []
    partial: list[str] = []

    def read(task: Task, rel: Optional[str], what: str) -> list[Example]:
        if rel is None:
            raise ConfigError(f"task {task.name!r} has no {what} file in the {config.setting} setting")
        if source == "hub" and superglue_hub.from_hub(rel):
            config_name, split = superglue_hub.hub_split(task, rel)
            notes.append(f"{rel} read from the hub: {superglue_hub.source_name(config_name, split)}")
            return superglue_hub.read(task, rel)[0]
        status = partial_status(root, rel)
        if status is not None and not status.startswith("missing"):
            partial.append(rel)
            notes.append(f"{rel} is marked in PARTIAL.tsv: {status}")
        return task.read(require(root, rel))

    train_examples: list[Example] = []
    dev_examples: list[Example] = []
    files = train_task.files()
    if not config.zero_shot:
        train_examples = subset(read(train_task, files.train(config.setting), "training"), config.max_train,
                                SUBSET_SEED)
        dev_examples = read(train_task, files.dev(config.setting), "model-selection")
        if config.setting == "supervised":  # the dev set is the evaluation set: select on what is evaluated
            dev_examples = eval_subset(dev_examples, config.max_eval_for(train_task.name))
        dev_examples = subset(dev_examples, config.max_dev, SUBSET_SEED)
        if config.max_train is not None or config.max_dev is not None:
            notes.append(f"training on {len(train_examples)} and selecting on {len(dev_examples)} examples "
                         "(max_train/max_dev set)")
    evals = []
    for task in eval_tasks:
        rel = eval_file(task, root, source)
        if rel != task.files().eval:
            reason = partial_status(root, task.files().eval) or "file not found in the data root"
            notes.append(f"{task.files().eval} is absent ({reason}): evaluated on {rel} instead, which is also "
                         "the model-selection set, so the numbers are optimistic")
            partial.append(task.files().eval)
        examples = read(task, rel, "evaluation")
        evals.append(EvalSet(task, eval_subset(examples, config.max_eval_for(task.name)), rel, len(examples)))
    return RunData(train_examples, dev_examples, evals, notes, partial)


def eval_file(task: Task, root: Path, source: str = "local") -> str:
    """The file a task is evaluated on: its declared one, or its fallback when that is absent (never from the
    hub, which has every SuperGLUE dev set)."""
    rel = task.files().eval
    if source == "hub" and superglue_hub.from_hub(rel):
        return rel
    return task.eval_fallback if task.eval_fallback and not (root / rel).is_file() else rel


def data_files(config: SuperGLUEConfig, train_task: Task, eval_tasks: Sequence[Task], root: Path,
               source: str = "local") -> list[tuple[Task, str]]:
    """Every file a run reads (the task reading it, the path relative to the data root): what `load_data` reads,
    whose hashes are fingerprinted."""
    files = train_task.files()
    trained = [] if config.zero_shot else [files.train(config.setting), files.dev(config.setting)]
    return ([(train_task, rel) for rel in trained if rel is not None]
            + [(task, eval_file(task, root, source)) for task in eval_tasks])


def run_fields(ws: Workspace, config: SuperGLUEConfig, train_task: Task, eval_tasks: Sequence[Task]) -> dict[str, Any]:
    """Every field that decides a run's seeds' numbers: the key of its resume folder (`keyed_dir`). Also what
    `python -m repro sweep --plan` compares. A file read from the hub counts as `hub:<path>` with the hub split's
    fingerprint in place of a sha256."""
    root = data_root(ws.root)
    files = data_files(config, train_task, eval_tasks, root, ws.data_source)
    hub = {rel: task for task, rel in files if ws.data_source == "hub" and superglue_hub.from_hub(rel)}
    data = data_hashes(root, [rel for _, rel in files if rel not in hub])
    data.update({f"hub:{rel}": superglue_hub.fingerprint(task, rel) for rel, task in hub.items()})
    return ws.unit_fields(config.fingerprint_data(), data)


def output_dir(results_root: Path, backbone_name: str, config: SuperGLUEConfig) -> Path:
    """The folder of a run's per-task results: <results>/superglue/<setting>/<backbone>/<method>[-<variant>]/
    (`RunConfig.variant`: a non-default encoder or preset)."""
    name = "-".join(filter(None, (config.method_entry.name, config.variant)))
    return results_root / "superglue" / config.setting / backbone_name / name


def resume_base(ws: Workspace, backbone_name: str, config: SuperGLUEConfig) -> Path:
    """The folder holding a training task's resume folders, one per fingerprint of `run_fields`."""
    return ws.state_dir(output_dir(ws.results_root, backbone_name, config)) / config.train_task


def eval_subset(examples: list[Example], limit: Optional[int]) -> list[Example]:
    """A fixed seeded subset of at most `limit` examples made of whole groups (MultiRC questions, AX-g pairs),
    in file order; the same for every seed and method, so that their numbers compare."""
    if limit is None or len(examples) <= limit:
        return examples
    groups: dict[Any, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group if ex.group is not None else ("#", i), []).append(i)
    keys = list(groups)
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(SUBSET_SEED)).tolist()
    chosen: list[int] = []
    for k in order:
        if len(chosen) + len(groups[keys[k]]) <= limit:
            chosen.extend(groups[keys[k]])
    if not chosen:
        raise ConfigError(f"max_eval {limit} is smaller than the first group ({len(groups[keys[order[0]]])} examples)")
    return [examples[i] for i in sorted(chosen)]


# ------------------------------------------------------------------------------------------ the run
@dataclass
class RunPlan:
    """What the engine resolved before training: tasks, method, pattern style, backbone and seeds."""

    config: SuperGLUEConfig
    train_task: Task
    eval_tasks: list[Task]  # the training task, then its diagnostics
    method: Method
    backbone: Backbone
    seeds: list[int]  # zero-shot: the first seed only

    @property
    def style(self) -> str:
        """The pattern family of the method: manual | ptuning | classifier."""
        return self.method.style.value

    def template(self, variant: str) -> Template:
        """The training task's template of `variant` in the text fidelity item `pattern_text` chooses (the suite's,
        or the authors' where the task declares `authors_patterns`), shortening over-long inputs by fidelity item
        `truncation`, its parts spaced by fidelity item `part_spacing`."""
        choices = self.config.choices
        template = self.train_task.template(self.style, variant, text=choices.pattern_text)
        return template.with_truncation(choices.truncation).with_spacing(choices.part_spacing)


def check_pattern(run: RunPlan, variant: str) -> None:
    """A named variant must exist, and a causal LM must see every input slot (nothing after [MASK])."""
    validate.check_pattern(run.train_task, run.method, variant, causal=run.backbone.is_causal,
                           text=run.config.choices.pattern_text)


def default_pattern(run: RunPlan) -> str:
    return default_variant(run.train_task, run.style, causal=run.backbone.is_causal)


def default_variant(task: Task, style: str, *, causal: bool) -> str:
    """The pattern a run uses when none is named (and none is searched)."""
    return "classifier" if style == "classifier" else task.default_variant(style, causal=causal)


def seed_path(runs_dir: Path, variant: str, seed: int) -> Path:
    """A finished seed's record in its run's resume folder (`keyed_dir` of `run_fields`)."""
    return runs_dir / variant / f"seed{seed}.json"


def rng_path(runs_dir: Path, variant: str, seed: int) -> Path:
    """Under `seed_rule=once`: the RNG state a seed left, beside its record; the next seed continues from it."""
    return runs_dir / variant / f"seed{seed}.rng.pt"


def seed_reusable(runs_dir: Path, variant: str, seed: int, fingerprint: str, seeds_once: bool) -> Optional[dict]:
    """The seed's record when a run would reuse it: its fingerprint matches, and under `seed_rule=once` the RNG
    state it left is there too (else the seed is recomputed to continue the stream)."""
    done = load_finished(seed_path(runs_dir, variant, seed), "fingerprint", fingerprint, SUPERGLUE_SEED_SCHEMA)
    if done is None or (seeds_once and not rng_path(runs_dir, variant, seed).is_file()):
        return None
    return done


def search_variants(run: RunPlan) -> tuple[str, ...]:
    """The patterns supervised P-tuning searches (fidelity item `pattern_search`): `length` the paper's pattern
    with 1, 2 and 4 prompt tokens; `positions` the authors' searched patterns (`Task.searched_patterns`: where
    prompt tokens and anchors sit), or the length variants for a task that declares none."""
    task = run.train_task
    if run.config.choices.pattern_search == "positions" and task.searched_patterns:
        return tuple(task.searched_patterns)
    return tuple(task.ptuning_patterns)


def searches_patterns(run: RunPlan) -> bool:
    """Supervised P-tuning chooses its pattern on dev (the paper searched patterns in that setting)."""
    return (run.config.setting == "supervised" and run.style == "ptuning" and run.config.pattern is None
            and len(search_variants(run)) > 1)


class Engine:
    """Runs the seeds of one plan, reusing finished seeds, and writes the result files."""

    def __init__(self, run: RunPlan, data: RunData, runs_dir: Path, quiet: bool,
                 fields: Optional[dict[str, Any]] = None) -> None:
        self.run = run
        self.data = data
        self.runs_dir = runs_dir
        self.quiet = quiet
        self.fields = fields or {"config": run.config.fingerprint_data()}
        self.fingerprint = fields_fingerprint(self.fields)
        self.log = ReuseLog("seed", runs_dir)
        self.computed: set[int] = set()  # seeds this run computed (the others it found finished are announced)
        self.pristine = PristineLM(run.backbone, run.method)  # the LM's weights before any seed trained it

    def finished_seeds(self, variant: str, exclude: Mapping[int, Any]) -> dict[int, dict[str, Any]]:
        """Finished seeds of these settings and pattern in the resume folder that this run did not ask for."""
        found = {}
        for path in sorted((self.runs_dir / variant).glob("seed*.json")):
            done = load_finished(path, "fingerprint", self.fingerprint, SUPERGLUE_SEED_SCHEMA)
            if done is not None and done.get("seed") not in exclude:
                found[int(done["seed"])] = done
        return dict(sorted(found.items()))

    def seed_path(self, variant: str, seed: int) -> Path:
        return seed_path(self.runs_dir, variant, seed)

    def seed_result(self, variant: str, seed: int) -> dict[str, Any]:
        path = self.seed_path(variant, seed)
        done = seed_reusable(self.runs_dir, variant, seed, self.fingerprint, self._seeds_once())
        if done is not None:
            if seed not in self.computed:
                self.log.reused.append(done)
            return done
        if self._seeds_once():
            self._continue_stream(variant, seed)
        result = self._compute(variant, seed)
        self.computed.add(seed)
        if self._seeds_once():  # data-parallel: the main process's stream, which every process continues from
            state = rng_state()
            distributed.once(lambda: checkpoint.save(self._rng_path(variant, seed), state, kind="rng_state"))
        write_result(path, result)
        shutil.rmtree(self._checkpoint_dir(variant, seed), ignore_errors=True)
        return result

    # Fidelity item seed_rule=once (THUDM/P-tuning PT-Fewshot/pet/modeling.py train_pet: set_seed(seed) once, then
    # the repetitions in sequence): the first repetition starts from set_seed(first seed), each later one from the
    # RNG state the one before left, saved beside its result so that a resumed run continues the same stream.
    def _seeds_once(self) -> bool:
        return self.run.config.choices.seed_rule == "once"

    def _rng_path(self, variant: str, seed: int) -> Path:
        return rng_path(self.runs_dir, variant, seed)

    def _continue_stream(self, variant: str, seed: int) -> None:
        seeds = self.run.seeds
        at = seeds.index(seed) if seed in seeds else 0
        if at == 0:
            set_seed(seeds[0])
            return
        previous = self._rng_path(variant, seeds[at - 1])
        state = checkpoint.load(previous, kind="rng_state")  # None when absent, or unusable and set aside
        if state is None:  # recompute the previous seed, which writes its end state again
            self.seed_result(variant, seeds[at - 1])
            state = checkpoint.load(previous, kind="rng_state")
        set_rng_state(state)

    def _checkpoint_dir(self, variant: str, seed: int) -> Path:
        return self.runs_dir / variant / f"seed{seed}.train"

    def _uses_checkpoints(self) -> bool:
        mode, timed = self.run.config.checkpoint, self.run.config.checkpoint_minutes
        return mode == "always" or (mode == "auto" and (timed > 0 or not self.run.method.trains_backbone))

    def train_seeds_together(self, variant: str, seeds: Sequence[int]) -> None:
        """A prompt encoder on a frozen LM (P-tuning-frozen): the pending seeds' encoders train in one joint pass
        (`repro.experiment.joint`), each seed written as it finishes; `seed_result` then finds them done. Task
        kinds whose scorer cannot share passes (candidates, spans) are left to the one-seed loop."""
        pending = [s for s in seeds
                   if load_finished(self.seed_path(variant, s), "fingerprint", self.fingerprint, SUPERGLUE_SEED_SCHEMA)
                   is None]
        if len(pending) < 2:
            return
        started = time.perf_counter()
        run, config = self.run, self.run.config
        task = run.train_task
        template = run.template(variant)
        members = [Member(f"seed{s}", task, template, variant, s) for s in pending]
        joint = build_joint(members, run.method, run.backbone, config, max_length=config.max_length,
                            options=config.scorer_options, quiet=self.quiet)
        if any(s.joint_key() is None for s in joint.scorers):
            return
        checkpoint = self.runs_dir / variant / "joint.train" if self._uses_checkpoints() else None

        def on_done(indices: list[int], fitted: list[dict[str, Any]]) -> None:
            scorers = [joint.scorers[i] for i in indices]
            metrics: list[dict[str, Any]] = [{} for _ in indices]
            for ev in self.data.evals:
                predicted = predict_together(scorers, [ev.examples] * len(indices), desc=f"{ev.task.name} eval")
                for k, preds in enumerate(predicted):
                    metrics[k][ev.task.name] = ev.task.score(ev.examples, preds)
            seconds = time.perf_counter() - started
            for k, (i, training) in enumerate(zip(indices, fitted)):
                seed = pending[i]
                write_result(self.seed_path(variant, seed), {
                    "schema": SUPERGLUE_SEED_SCHEMA, "fingerprint": self.fingerprint, "seed": seed, "pattern": variant,
                    "template": str(template), "metrics": metrics[k], "training": training,
                    "scoring": joint.scorers[i].describe(), "wall_time_s": round(seconds / len(pending), 2),
                    "shared_pass": {"seeds": len(pending), "wall_time_s": round(seconds, 2)}, **provenance(),
                })
                self.computed.add(seed)

        fit_together(joint, members, [self.data.train] * len(pending), [self.data.dev] * len(pending), config.train,
                     checkpoint_dir=checkpoint, on_done=on_done,
                     desc=f"{task.name} {variant} seeds {','.join(map(str, pending))} jointly", quiet=self.quiet,
                     selection=config.choices.selection, checkpoint_every_s=config.checkpoint_every_s)
        if checkpoint is not None:
            shutil.rmtree(checkpoint, ignore_errors=True)

    def _compute(self, variant: str, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        run, config = self.run, self.run.config
        self.pristine.reset()
        task = run.train_task
        template = run.template(variant)
        scorer = build_scorer(task, run.method, run.backbone, template, variant, config,
                              None if self._seeds_once() else seed,
                              max_length=config.max_length, options=config.scorer_options, quiet=self.quiet)
        training = None
        if not run.method.zero_shot:
            checkpoint = self._checkpoint_dir(variant, seed) if self._uses_checkpoints() else None
            training = fit(scorer, task, self.data.train, self.data.dev, config.train, seed, checkpoint_dir=checkpoint,
                           desc=f"{task.name} {variant} seed {seed}", quiet=self.quiet,
                           selection=config.choices.selection,
                           checkpoint_every_s=config.checkpoint_every_s)
        metrics = {ev.task.name: evaluate(scorer, ev.task, ev.examples, f"{ev.task.name} eval") for ev in self.data.evals}
        return {
            "schema": SUPERGLUE_SEED_SCHEMA, "fingerprint": self.fingerprint, "seed": seed, "pattern": variant,
            "template": str(template), "metrics": metrics, "training": training, "scoring": scorer.describe(),
            "wall_time_s": round(time.perf_counter() - started, 2), **provenance(),
        }


def run_superglue(config: SuperGLUEConfig, *, backbone: Optional[Backbone] = None,
                  **where: Any) -> dict[str, dict[str, Any]]:
    """Run (or resume) every seed and write one result per evaluated task; returns them by task name.
    `where`: the `Workspace` fields (root, results_root, runs_root, device, threads, quiet, data_source)."""
    ws = Workspace(**where)
    quiet = ws.quiet
    method = config.method_entry
    train_task = get_task(config.train_task)
    eval_tasks = [train_task] + [get_task(n) for n in train_task.diagnostics]
    superglue_hub.check_source(ws.data_source, config.BENCHMARK)
    data = load_data(config, train_task, eval_tasks, data_root(ws.root), ws.data_source)  # before the backbone
    _, backbone, record = ws.open(config, backbone)
    seeds = config.seeds[:1] if method.zero_shot else list(config.seeds)
    run = RunPlan(config, train_task, eval_tasks, method, backbone, seeds)
    if config.pattern is not None:
        check_pattern(run, config.pattern)
    out_dir = output_dir(ws.results_root, backbone.name, config)
    fields = run_fields(ws, config, train_task, eval_tasks)
    runs_dir = keyed_dir(resume_base(ws, backbone.name, config), fields)
    engine = Engine(run, data, runs_dir, quiet, fields)

    search: dict[str, float] = {}
    if searches_patterns(run):
        for variant in search_variants(run):
            check_pattern(run, variant)
            search[variant] = engine.seed_result(variant, run.seeds[0])["training"]["best_dev"]
        variant = max(search, key=lambda v: (search[v], -list(search).index(v)))
    else:
        variant = config.pattern or default_pattern(run)
        check_pattern(run, variant)
    if not config.sequential and can_train_jointly(method, config.train):
        engine.train_seeds_together(variant, run.seeds)
    per_seed = {}
    for seed in tqdm(run.seeds, desc=f"{train_task.name} {method.name} seeds", disable=quiet, unit="seed"):
        per_seed[seed] = engine.seed_result(variant, seed)
    engine.log.announce(len(run.seeds))
    if not method.zero_shot:  # a run of fewer seeds never shrinks the result: every finished seed of these settings
        per_seed.update(engine.finished_seeds(variant, exclude=per_seed))

    results = {}
    for ev in data.evals:
        payload = result_payload(run, data, ev, variant, per_seed, search)
        # What the seeds were computed with (a plan can say why they would be recomputed once the resume state is
        # gone), and each seed's own wall time (the command's, stamped below, may have reused them all).
        payload.update(fingerprint=engine.fingerprint, fingerprint_fields=engine.fields,
                       seed_wall_time_s={str(s): r.get("wall_time_s") for s, r in per_seed.items()})
        path = out_dir / f"{ev.task.name}.json"
        results[ev.task.name] = record.stamp(payload)
        write_result(path, results[ev.task.name])
    return results


def result_payload(run: RunPlan, data: RunData, ev: EvalSet, variant: str, per_seed: dict[int, dict],
                   search: dict[str, float]) -> dict[str, Any]:
    """The result of one evaluated task: per-seed metrics, mean and std, and what a reader needs to trust them."""
    config, method, backbone = run.config, run.method, run.backbone
    task = ev.task
    seeds = {str(s): r["metrics"][task.name] for s, r in per_seed.items()}
    mean, std = {}, {}
    for key in task.metrics:
        mean[key], std[key] = mean_std([m[key] for m in seeds.values()])
    first = next(iter(per_seed.values()))
    notes = []
    partial = len(ev.examples) < ev.n_total or bool(data.partial_files)
    if len(ev.examples) < ev.n_total:
        notes.append(f"evaluated on a fixed seeded subset of {len(ev.examples)} of the {ev.n_total} examples of "
                     f"{ev.path} (whole groups; preset {config.preset!r} or max_eval)")
    notes += data.notes
    if method.zero_shot:
        notes.append("zero-shot: nothing is trained, so one evaluation stands for all seeds (seed "
                     f"{run.seeds[0]}); std is 0 by construction")
    notes += list(task.notes)
    if task.trained_on:
        notes.append(f"diagnostic: evaluated with the {task.trained_on} run's model "
                     "(same setting, method, pattern and seed)")
    if config.setting == "supervised" and not method.zero_shot:
        notes.append("supervised: early stopping and evaluation on the same SuperGLUE dev set (val.jsonl), "
                     "as the paper did; the dev numbers are optimistic for that reason")
    elif config.setting == "fewshot" and not method.zero_shot:
        notes.append(f"few-shot: trained on {len(data.train)} FewGLUE examples, model selection on "
                     f"{len(data.dev)} dev32 examples, evaluation on {ev.path}")
    if search:
        notes.append(f"pattern chosen on dev among {', '.join(search)} (seed {run.seeds[0]}): {variant}")
    elif variant != run.train_task.pattern_variants(run.style)[0] and config.pattern is None and run.style != "classifier":
        notes.append(f"pattern {variant!r}: the default {run.train_task.pattern_variants(run.style)[0]!r} puts input "
                     "after [MASK], invisible to a causal LM")
    cfg = config.to_dict()
    cfg.update(task=task.name, backbone_kind="causal" if backbone.is_causal else "masked",
               seeds=list(per_seed), pattern=variant, template=first["template"])
    payload: dict[str, Any] = {
        "schema": SUPERGLUE_SCHEMA,
        "config": cfg,
        "backbone_name": backbone.name,
        "backbone_source": backbone.source,
        "seeds": seeds,
        "mean": mean,
        "std": std,
        "eval_split": "diagnostic" if task.trained_on else Path(ev.path).stem,
        "eval_file": ev.path,
        "n_eval": len(ev.examples),
        "n_eval_total": ev.n_total,
        "partial": partial,
        "notes": notes,
        "scoring": first["scoring"],
        "metric": describe_metric("super_glue", task.name),
    }
    if task.trained_on:
        payload["trained_on"] = task.trained_on
    if search:
        payload["pattern_search"] = {"metric": "best dev selection score", "seed": run.seeds[0], "scores": search}
    if not method.zero_shot:
        payload["training"] = {str(s): r["training"] for s, r in per_seed.items()}  # with history: the report's curves
    return payload


def format_results(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, r in results.items():
        cfg = r["config"]
        cells = ", ".join(f"{k} {r['mean'][k]:.1f} ± {r['std'][k]:.1f}" for k in r["mean"])
        mark = " (partial: subset)" if r["partial"] else ""
        lines.append(f"{name}: {cells} over {len(r['seeds'])} seed(s), n_eval {r['n_eval']}{mark}; "
                     f"{cfg['method']} on {r['backbone_name']}, {cfg['setting']}, pattern {cfg['pattern']!r}")
    return "\n".join(lines)
