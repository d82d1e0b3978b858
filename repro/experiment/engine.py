"""The one experiment engine: what every benchmark does for one unit of work (a LAMA relation, a SuperGLUE
seed), so that the drivers (`repro.experiment.lama`, `repro.experiment.superglue`) only choose units and
summarise them.

Per unit: reset the LM to its pretrained weights (methods that train it), seed, build the method's prompt
encoder, wrap both in the prompted LM, make the task kind's scorer (`repro.scorers`), train with model
selection on dev (`repro.core.training`: the best-dev state is restored), predict and score. Finished units are
small JSON files keyed by a fingerprint of everything that decides their numbers; a rerun reuses them, and an
interrupted unit resumes from its checkpoint with the same numbers.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from repro import pet_decoding, shared_prefix
from repro.core import distributed
from repro.core.backbone import Backbone, load_backbone
from repro.core.cpu_rates import slow_dtype_note
from repro.core.model import PromptedLM
from repro.core.template import Rendered, Template
from repro.core.training import TrainConfig, TrainOutcome, set_seed, train
from repro.data import data_root
from repro.errors import ConfigError
from repro.atomic import atomic_write_json
from repro.experiment.config import RunConfig
from repro.experiment.fingerprints import differences, fields_fingerprint, unit_fields
from repro.experiment.renders import cached
from repro.fidelity import Score, selection_value
from repro.methods import Method
from repro.ptuning import PromptEncoder, PromptEncoderConfig, PromptEncoderReparameterizationType, paper_lstm_config
from repro.results import RUNS_DIR, RunRecord
from repro.scorers.base import Scorer, ScorerContext, make_scorer
from repro.superglue_hub import SOURCES
from repro.validate import preflight
from repro.tasks.base import Example, Task


@dataclass
class Workspace:
    """Where a run reads its data and writes its results and resume state, on what device and threads, how
    loudly. The drivers take these fields as keyword arguments (`run_lama(config, root=..., results_root=...,
    ...)`); the CLI builds its run options from them.

    A user's run writes under the git-ignored `runs/` unless `--results DIR` names another folder; the committed
    reference results (`results/`) are written only when named explicitly (`--results results`). Resume state
    (checkpoints, SuperGLUE's finished seeds) lives inside the run folder (`.resume/`, keyed by the units'
    fingerprint), so that it belongs to its results and never blocks a run into another folder."""

    root: Optional[Path] = field(default=None, metadata={
        "help": "data root (default: $REPRO_DATA or ./data)", "flag": "--data-root", "aliases": ("--root",)})
    results_root: Path = field(default=RUNS_DIR, metadata={
        "help": "results folder of this run (default: the project's git-ignored runs/; the committed reference "
                "results only as --results results)", "flag": "--results"})
    runs_root: Optional[Path] = field(default=None, metadata={
        "help": "resume state (checkpoints, finished seeds) elsewhere than inside the results folder", "flag": "--runs"})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu, cuda, cuda:1"})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads (0: torch's default); on a machine shared with other jobs, 1 avoids threads "
                "waiting on each other. Part of the fingerprint: the thread count changes floating-point sums"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})
    data_source: str = field(default="local", metadata={
        "help": "where SuperGLUE's files come from: local (the data root) | hub (the Hugging Face hub's super_glue "
                "dataset; FewGLUE's few-shot files stay local; repro/superglue_hub.py)", "choices": SOURCES})

    def __post_init__(self) -> None:
        if self.data_source not in SOURCES:
            raise ConfigError(f"unknown data source {self.data_source!r}; valid: {', '.join(SOURCES)}")
        self.root = Path(self.root) if self.root is not None else None
        self.results_root = Path(self.results_root)
        self.runs_root = Path(self.runs_root) if self.runs_root is not None else None
        if self.threads < 0:
            raise ConfigError(f"--threads must be 0 (default) or positive, got {self.threads}")
        self.quiet = self.quiet or not distributed.is_main()  # data-parallel: progress from the main process only

    def open(self, config: RunConfig, backbone: Optional[Backbone]) -> tuple[Path, Backbone, RunRecord]:
        """(data root, the backbone on the device, the provenance record of this command)."""
        if self.threads:
            torch.set_num_threads(self.threads)
        if backbone is None:  # the device, backbone source and data checks, before anything loads or is written
            preflight(config, self)
        if config.method_entry.trains:
            distributed.check_batch_size(config.train.batch_size)
        self.device = distributed.setup(self.device)  # launched data-parallel: join the processes, take a GPU each
        record = RunRecord(dtype=config.lm_dtype(config.method_entry), device=self.device)
        note = slow_dtype_note(record.dtype, self.device)
        if note:
            print(note, file=sys.stderr)
        root = data_root(self.root)
        backbone = backbone or load_backbone(config.backbone)
        backbone.model.to(self.device)
        return root, backbone, record

    def state_dir(self, out_dir: Path) -> Path:
        """The resume state of the run folder `out_dir`: inside it, or the same layout under `--runs`."""
        if self.runs_root is None:
            return out_dir / RESUME_DIR
        try:
            return self.runs_root / out_dir.relative_to(self.results_root)
        except ValueError:
            return self.runs_root / out_dir.name

    def unit_fields(self, config_data: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
        """Every field that decides a unit's numbers on this workspace: the threads `open` sets (torch's default
        when none is asked), so a plan made before `open` (`repro.sweep.state`) gets the run's own fields; the
        processes of a data-parallel launch where they change the numbers (`processes_field`)."""
        return unit_fields(config_data, threads=self.threads or torch.get_num_threads(), device=self.device, data=data,
                           processes=processes_field(config_data))


def processes_field(config_data: dict[str, Any]) -> int:
    """The data-parallel world size as a fingerprint field (1: left out). In float32 the processes give one
    process's numbers (measured on SmolLM2-135M, CB few-shot P-tuning on 2 CPU processes: the same dev curve and
    metrics, losses within 1e-6 relative, the selected weights within 2.2e-7; tests/test_distributed.py checks
    it on a tiny Llama), so the world size is only recorded in the results' environment and a run of N processes
    is reused by one of M. In reduced precision (bf16 autocast, or the float16 frozen LM of fidelity `frozen_lm_dtype`) each
    shard's forward runs other kernel shapes than the whole batch's, and the differences grow as the thread
    count's do (CB few-shot, 4 steps of batch 8: acc 59.4 with 1 process, 50.0 with 2), so there it keys reuse."""
    low = config_data.get("dtype") != "float32" or \
        (config_data.get("fidelity_choices") or {}).get("frozen_lm_dtype") == "float16"
    return distributed.world_size() if low else 1


RESUME_DIR = ".resume"  # hidden: the report skips it, and .gitignore keeps it out of commits


@dataclass
class ReuseLog:
    """What a run reused and what it recomputed, and why: announced in a few lines, never silent."""

    what: str  # "relation", "seed"
    where: Path
    reused: list[dict[str, Any]] = field(default_factory=list)
    recomputed: dict[str, list[str]] = field(default_factory=dict)  # reason -> unit names

    def finished(self, name: str, path: Path, fields: dict[str, Any], key: str,
                 schema: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The finished unit at `path` when its fingerprint (`key`) is that of `fields`; else None, with the
        reason recorded when a file was there."""
        done = load_finished(path, key, fields_fingerprint(fields), schema)
        if done is not None:
            self.reused.append(done)
            return done
        old = read_json(path)
        if old is not None and (schema is None or old.get("schema") == schema):
            self.recomputed.setdefault(differences(old.get("fingerprint_fields"), fields), []).append(name)
        return None

    def lines(self, total: int) -> list[str]:
        """`reused 38 of 41 relations from DIR (commit abc, CPU X, 2025-06-01)`, then one line per reason."""
        out = []
        if self.reused:
            origins: dict[str, int] = {}
            for r in self.reused:
                date = str(r.get("date") or "date unknown")[:10]
                origin = f"commit {str(r.get('git_commit') or 'unknown')[:12]}, " \
                         f"CPU {r.get('cpu_model') or r.get('environment', {}).get('cpu_model') or 'unknown'}, {date}"
                origins[origin] = origins.get(origin, 0) + 1
            where = "; ".join(f"{n} computed at {o}" for o, n in origins.items())
            out.append(f"reused {len(self.reused)} of {total} {self.what}s finished earlier in {self.where} ({where})")
        for reason, names in self.recomputed.items():
            out.append(f"recomputing {len(names)} {self.what}(s) ({', '.join(names[:6])}"
                       f"{', ...' if len(names) > 6 else ''}): {reason}")
        return out

    def announce(self, total: int) -> None:
        if not distributed.is_main():
            return
        for line in self.lines(total):
            print(line, file=sys.stderr)


def keyed_dir(base: Path, fields: dict[str, Any]) -> Path:
    """`base/<fingerprint of fields>`: resume state of exactly these settings. Folders of other settings are
    left aside (announced once, never read, never blocking); a finished run removes only its own."""
    path = keyed_path(base, fields)
    others = other_keyed(base, fields)
    if others and distributed.is_main():
        reasons = {differences(keyed_fields(p), fields) for p in others}
        print(f"set aside {len(others)} resume folder(s) with other settings under {base} ({'; '.join(sorted(reasons))})",
              file=sys.stderr)
    if distributed.is_main() and not (path / FIELDS_FILE).is_file():
        atomic_write_json(path / FIELDS_FILE, fields)
    return path


def keyed_path(base: Path, fields: dict[str, Any]) -> Path:
    """Where `keyed_dir` keeps the resume state of `fields`, without creating or announcing anything."""
    return base / fields_fingerprint(fields)


def other_keyed(base: Path, fields: dict[str, Any]) -> list[Path]:
    """The resume folders under `base` of other settings than `fields` (what `keyed_dir` sets aside)."""
    key = fields_fingerprint(fields)
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name != key) if base.is_dir() else []


def keyed_fields(path: Path) -> Optional[dict[str, Any]]:
    """The fields a resume folder was made with (None: unknown)."""
    return read_json(path / FIELDS_FILE)


FIELDS_FILE = "fields.json"


def read_json(path: Path) -> Optional[dict[str, Any]]:
    """A JSON object file's content; None when it is absent, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_finished(path: Path, key: str, value: str, schema: Optional[str] = None) -> Optional[dict[str, Any]]:
    """A finished unit's JSON when it exists, parses, and its `key` equals `value` (its fingerprint)."""
    data = read_json(path)
    if data is None:
        return None
    if data.get(key) != value or (schema is not None and data.get("schema") != schema):
        return None
    return data


def subset(items: Sequence[Any], limit: Optional[int], seed: int) -> list[Any]:
    """At most `limit` items, a seeded random choice kept in file order (None: all of them)."""
    if limit is None or len(items) <= limit:
        return list(items)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    return [items[i] for i in sorted(order[:limit])]


class PristineLM:
    """The LM's pretrained weights, restored before every unit of a method that trains the LM."""

    def __init__(self, backbone: Backbone, method: Method) -> None:
        self.backbone = backbone
        self.state = copy.deepcopy(backbone.model.state_dict()) if method.trains_backbone else None

    def reset(self) -> None:
        if self.state is not None:
            self.backbone.model.load_state_dict(self.state)


def new_encoder(num_prompt_tokens: int, backbone: Backbone, config: RunConfig) -> PromptEncoder:
    """The prompt encoder of `config.encoder` (lstm: the paper's biLSTM + MLP; mlp: PEFT's default) with
    `config.resolved_encoder_hidden(dim)` units (each benchmark's authors' code has its own default); none: the
    prompt embeddings alone, trained directly (no width: `check_config` refuses `--encoder-hidden` with it).

    Fidelity item `encoder_mlp`: the LSTM's MLP head is Linear(2h, 2h) ReLU Linear(2h, d) (`double`, PEFT's shape)
    or Linear(2h, h) ReLU Linear(h, d) (`single`: THUDM/P-tuning PT-Fewshot/pet/wrapper.py ContinuousPrompt,
    h = d). The authors' LAMA encoder (LAMA/p_tuning/prompt_encoder.py, h = d/2) is PEFT's shape either way."""
    dim = backbone.hidden_size
    if config.encoder == "none":
        direct = PromptEncoderReparameterizationType.NONE
        return PromptEncoder(PromptEncoderConfig(num_virtual_tokens=num_prompt_tokens, token_dim=dim,
                                                 encoder_reparameterization_type=direct))
    hidden = config.resolved_encoder_hidden(dim)
    if config.encoder == "lstm":
        middle = hidden if config.choices.encoder_mlp == "single" and config.BENCHMARK == "superglue" else None
        return PromptEncoder(paper_lstm_config(num_prompt_tokens, dim, encoder_hidden_size=hidden),
                             lstm_mlp_hidden=middle)
    return PromptEncoder(PromptEncoderConfig(num_virtual_tokens=num_prompt_tokens, token_dim=dim,
                                             encoder_hidden_size=hidden))


def build_scorer(task: Task, method: Method, backbone: Backbone, template: Template, pattern: str,
                 config: RunConfig, seed: Optional[int], *, max_length: Optional[int], options: Optional[dict] = None,
                 quiet: bool = False) -> Scorer:
    """Seed (None: the caller has set the RNG stream, fidelity's `seed_rule=once`), then the method's model
    (fresh encoder where it has one) and the task kind's scorer, its renderings cached across runs
    (`repro.experiment.renders`)."""
    if seed is not None:
        set_seed(seed)
    encoder = new_encoder(template.num_prompt_tokens, backbone, config) if method.uses_encoder else None
    model = PromptedLM(backbone, encoder, train_backbone=method.trains_backbone, dtype=config.lm_dtype(method),
                       recompute_activations=config.recompute_activations)
    ctx = ScorerContext(task, method, model, template, pattern, max_length, config.eval_batch_size, quiet=quiet,
                        options=dict(options or {}), fidelity=config.choices)
    return new_scorer(ctx)


def new_scorer(ctx: ScorerContext) -> Scorer:
    """The task kind's scorer for `ctx`, decoding several masks as PET does where fidelity item `decoding=pet`
    asks (`repro.pet_decoding`), evaluating a passage its examples share once where the task says they do
    (`repro.shared_prefix`), its renderings cached (`repro.experiment.renders`)."""
    scorer = shared_prefix.adopt(make_scorer(ctx))
    if ctx.fidelity.decoding == "pet":
        scorer = pet_decoding.adopt(scorer)
    return cached(scorer)


def fit(scorer: Scorer, task: Task, train_examples: Sequence[Example], dev_examples: Sequence[Example],
        train_config: TrainConfig, seed: int, *, checkpoint_dir: Optional[Path], desc: str,
        quiet: bool = False, selection: str = "mean", checkpoint_every_s: Optional[float] = None) -> dict[str, Any]:
    """Train the scorer's model on `train_examples`, select on the task's dev selection score (fidelity item
    `selection`: `repro.fidelity.selection_value`), restore the best state; returns what the results record
    about training. Data-parallel (`repro.core.distributed`): each process trains on its shard of every batch
    and predicts its shard of the dev set; the predictions are gathered, so every process selects alike."""
    items = scorer.train_items(train_examples)

    def dev_score() -> Score:
        predictions = predict(scorer, dev_examples, "dev")
        scores = task.score(dev_examples, predictions)
        return selection_value(task, dev_examples, predictions, scores, selection)

    outcome = train(scorer.model, items, scorer.loss, dev_score, replace(train_config, seed=seed),
                    checkpoint_dir=checkpoint_dir, desc=desc, quiet=quiet, loss_weight=loss_weight,
                    item_length=item_length, checkpoint_every_s=checkpoint_every_s)
    return training_record(len(items), len(dev_examples), outcome)


def loss_weight(items: Sequence[Any]) -> float:
    """What a batch's mean loss averages over, for the data-parallel split of a batch (`training.train`): a
    scorer whose items are rendered inputs trains on their target tokens' mean cross-entropy
    (`inference.target_loss`: WSC's span, LAMA's one object token), so its weight is their number of target
    tokens; the other scorers (labelled items, candidate sets) average over items."""
    if items and all(isinstance(it, Rendered) for it in items):
        tokens = sum(len(it.target_ids or ()) for it in items)
        if tokens:
            return float(tokens)
    return float(len(items))


def item_length(item: Any) -> int:
    """Tokens of a training item: a rendered input, or the longest of a labelled item's or a candidate set's
    inputs (`rendered`). What batches cut by length sort on (`training.train`, the joint step's passes)."""
    rendered = getattr(item, "rendered", item)
    if isinstance(rendered, tuple):
        return max(len(r.input_ids) for r in rendered)
    return len(rendered.input_ids)


def predict(scorer: Scorer, examples: Sequence[Example], desc: str) -> list[Any]:
    """The scorer's predictions of `examples`; data-parallel, each process predicts its shard and every process
    gets them all, in order."""
    return distributed.map_sharded(lambda part: scorer.predict(part, desc=desc), examples)


def training_record(n_train: int, n_dev: int, outcome: TrainOutcome) -> dict[str, Any]:
    """What the results record about one unit's training (separate or joint)."""
    return {"n_train": n_train, "n_dev": n_dev, "best_dev": outcome.best_score,
            "best_step": outcome.best_step, "best_epoch": outcome.best_epoch, "steps": outcome.steps,
            "stopped_early": outcome.stopped_early, "resumed_from_step": outcome.resumed_from_step,
            "history": outcome.history}


def evaluate(scorer: Scorer, task: Task, examples: Sequence[Example], desc: str) -> dict[str, float]:
    """The task's metrics of the scorer's predictions on `examples`."""
    return task.score(examples, predict(scorer, examples, desc))
