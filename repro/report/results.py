"""Find and parse the suite's result files under a results directory.

A malformed file must not sink the whole report: it becomes a `LoadProblem` (its path and why) and the
other files are still read. Files with a schema this report does not read (per-relation LAMA files,
model configs) are skipped quietly unless they sit where a result file is expected.

This is the one reader of result files: the report and the quick tables (`lama-table`, `superglue-table`)
all parse through `parse_result_file`, so a field is interpreted the same way everywhere. A SuperGLUE
result may be of any registered task (`tasks.registry`), a task added at runtime included.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from repro.errors import DataError
from repro.report.names import LAMA_VOCABS, SETTINGS, canonical_backbone, task_names
from repro.results import LAMA_RELATION_SCHEMA, LAMA_SUMMARY_SCHEMA, SUPERGLUE_SCHEMA, SUPERGLUE_SEED_SCHEMA

LAMA_SCHEMA = LAMA_SUMMARY_SCHEMA
# Our own files that are not results of a run (a relation's part of a summary; a seed's record, kept under runs/).
IGNORED_SCHEMAS = frozenset({LAMA_RELATION_SCHEMA, SUPERGLUE_SEED_SCHEMA})
LAMA_RELATIONS = 41  # T-REx relations in LAMA: a macro P@1 over fewer is not the paper's number


@dataclass(frozen=True)
class RelationResult:
    """P@1 of one LAMA relation (None when the run skipped it, `skipped` says why), with how many facts the
    vocabulary kept and whether its test file is partial."""

    relation: str
    p_at_1: Optional[float]
    kept: Optional[int] = None
    dropped: Optional[int] = None
    partial: bool = False
    partial_reason: str = ""
    skipped: str = ""
    seeds: dict[str, float] = field(default_factory=dict)  # seed -> P@1 (a summary over several seeds)


@dataclass(frozen=True, eq=False)
class Result:
    """One run's numbers (all seeds) in the shape the report needs, whatever the task (hashed by identity)."""

    path: Path
    display: str
    kind: str
    backbone: str
    backbone_name: str
    backbone_kind: Optional[str]
    method: str
    setting: str
    task: str
    metrics: dict[str, float]
    preset: str = ""
    std: dict[str, float] = field(default_factory=dict)
    n_seeds: int = 1
    partial: bool = False
    partial_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    relations: tuple[RelationResult, ...] = ()
    eval_split: str = ""
    n_eval: Optional[int] = None
    command: str = ""
    git_commit: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    wall_time_s: Optional[float] = None
    seed_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # seed -> metrics
    config: dict[str, Any] = field(default_factory=dict)  # the run's config as recorded (fidelity choices, seed)


@dataclass(frozen=True)
class LoadProblem:
    """A result file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ResultSet:
    results: list[Result] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


class _Invalid(Exception):
    """A reason a file is not a usable result; becomes a LoadProblem."""


def discover_results(root: Path, exclude: Iterable[Path] = ()) -> ResultSet:
    """Parse every `*.json` under `root` (hidden paths and `exclude` folders skipped), sorted by path."""
    root = Path(root)
    excluded = [Path(p).resolve() for p in exclude]
    found = ResultSet()
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if any(path.resolve().is_relative_to(ex) for ex in excluded):
            continue
        display = display_path(root, path)
        try:
            result = parse_result_file(path, display, expected=_in_result_layout(Path(display)))
        except _Invalid as err:
            found.problems.append(LoadProblem(display, str(err)))
            continue
        if result is None:
            found.ignored.append(display)
        else:
            found.results.append(result)
    return found


def display_path(root: Path, path: Path) -> str:
    """How a result file is named in tables and warnings: from the results folder's own name down
    (`results/superglue/...`), the same wherever the report runs."""
    return (Path(Path(root).resolve().name) / Path(path).relative_to(root)).as_posix()


def read_result(path: Path, root: Path) -> Result:
    """One result file that must be a result (a quick table asked for it): a DataError names the file and why."""
    display = display_path(root, path)
    try:
        result = parse_result_file(path, display)
    except _Invalid as err:
        raise DataError(f"{path}: {err}") from None
    if result is None:
        raise DataError(f"{path}: not a result file (schema {LAMA_SCHEMA!r} or {SUPERGLUE_SCHEMA!r} expected)")
    return result


def _in_result_layout(path: Path) -> bool:
    """Where the LAMA and SuperGLUE modules write their results (the root's own name counts): a file there must parse."""
    return ("lama" in path.parts[:-1] and path.name == "summary.json") or "superglue" in path.parts[:-1]


def parse_result_file(path: Path, display: str, expected: bool = True) -> Optional[Result]:
    """A Result, None for a file of another kind, or `_Invalid` with the reason."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise _Invalid(f"not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise _Invalid(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise _Invalid(f"top level is a JSON {type(data).__name__}, not an object")
    schema = data.get("schema")
    if schema == LAMA_SCHEMA:
        return _parse_lama(path, display, data)
    if schema == SUPERGLUE_SCHEMA:
        return _parse_superglue(path, display, data)
    if schema in IGNORED_SCHEMAS or not expected:
        return None
    if schema is None:
        raise _Invalid(f"no 'schema' field; expected {LAMA_SCHEMA!r} or {SUPERGLUE_SCHEMA!r}")
    raise _Invalid(f"schema {schema!r} is not one this report reads ({LAMA_SCHEMA!r}, {SUPERGLUE_SCHEMA!r})")


def _parse_lama(path: Path, display: str, data: dict[str, Any]) -> Result:
    config = _get(data, "config", dict)
    vocab = _get(data, "config.vocab", str)
    if vocab not in LAMA_VOCABS:
        raise _Invalid(f"field 'config.vocab': {vocab!r} is not one of {', '.join(LAMA_VOCABS)}")
    metrics = {"macro_p_at_1": _number(data, "macro_p_at_1")}
    if data.get("micro_p_at_1") is not None:
        metrics["micro_p_at_1"] = _number(data, "micro_p_at_1")
    relations = tuple(_parse_relation(name, value) for name, value in sorted(_get(data, "relations", dict, {}).items()))
    notes = _notes(data)
    reasons = _relation_reasons(relations)
    evaluated = sum(r.p_at_1 is not None for r in relations)
    if relations and evaluated < LAMA_RELATIONS:
        reasons += (f"macro over {evaluated} of the {LAMA_RELATIONS} T-REx relations",)
    partial = bool(data.get("partial", False)) or bool(reasons)
    reasons = reasons or notes
    seeds = _seed_metrics(data.get("seeds"))  # several seeds: macro/micro are their mean, `std` their spread
    std = {k: _number(data, f"std.{k}") for k in _get(data, "std", dict, {}) if k in metrics}
    return Result(
        path=Path(path), display=display, kind="lama",
        backbone=canonical_backbone(_backbone_name(data)),
        backbone_name=_backbone_name(data), backbone_kind=_backbone_kind(data),
        method=_get(data, "config.method", str), setting=vocab, task="lama", metrics=metrics, std=std,
        preset=str(config.get("preset") or ""), n_seeds=max(1, len(seeds)), partial=partial,
        partial_reasons=_reasons(partial, reasons), notes=notes, relations=relations, seed_metrics=seeds,
        **_provenance(data),
    )


def _parse_superglue(path: Path, display: str, data: dict[str, Any]) -> Result:
    config = _get(data, "config", dict)
    task = _get(data, "config.task", str)
    if task not in task_names():
        raise _Invalid(f"field 'config.task': {task!r} is not a registered task ({', '.join(task_names())})")
    setting = _get(data, "config.setting", str)
    if setting not in SETTINGS:
        raise _Invalid(f"field 'config.setting': {setting!r} is not one of {', '.join(SETTINGS)}")
    mean = {k: _number(data, f"mean.{k}") for k in _get(data, "mean", dict)}
    if not mean:
        raise _Invalid("field 'mean' has no metrics")
    std = {k: _number(data, f"std.{k}") for k in _get(data, "std", dict, {})}
    seeds = data.get("seeds")
    n_seeds = len(seeds) if isinstance(seeds, dict) and seeds else len(config.get("seeds") or [None])
    partial = bool(data.get("partial", False))
    notes = _notes(data)
    n_eval = data.get("n_eval")
    return Result(
        path=Path(path), display=display, kind="superglue",
        backbone=canonical_backbone(_backbone_name(data)),
        backbone_name=_backbone_name(data), backbone_kind=_backbone_kind(data),
        method=_get(data, "config.method", str), setting=setting, task=task, metrics=mean, std=std,
        preset=str(config.get("preset") or ""), n_seeds=n_seeds, partial=partial, partial_reasons=_reasons(partial, notes), notes=notes,
        eval_split=str(data.get("eval_split") or ""), n_eval=n_eval if isinstance(n_eval, int) else None,
        seed_metrics=_seed_metrics(seeds), **_provenance(data),
    )


def _seed_metrics(seeds: Any) -> dict[str, dict[str, float]]:
    """`seeds` of a result file: seed -> {metric: value}; values that are not finite numbers are refused."""
    if not isinstance(seeds, dict):
        return {}
    out = {}
    for seed, values in seeds.items():
        if not isinstance(values, dict) or not all(_is_number(v) for v in values.values()):
            raise _Invalid(f"field 'seeds.{seed}' is not an object of finite numbers")
        out[str(seed)] = {k: float(v) for k, v in values.items()}
    return out


def _parse_relation(name: str, value: Any) -> RelationResult:
    if not isinstance(value, dict):
        raise _Invalid(f"field 'relations.{name}' is not an object")
    p_at_1 = value.get("p_at_1")
    skipped = str(value.get("skipped") or "")
    if p_at_1 is None and not skipped:
        raise _Invalid(f"field 'relations.{name}.p_at_1' is missing and 'skipped' does not say why")
    if p_at_1 is not None and not _is_number(p_at_1):
        raise _Invalid(f"field 'relations.{name}.p_at_1' is not a finite number: {p_at_1!r}")
    kept, dropped = value.get("kept"), value.get("dropped")
    return RelationResult(
        relation=name, p_at_1=None if p_at_1 is None else float(p_at_1),
        kept=kept if isinstance(kept, int) else None, dropped=dropped if isinstance(dropped, int) else None,
        partial=bool(value.get("partial", False)), partial_reason=str(value.get("partial_reason") or ""),
        skipped=skipped, seeds=_relation_seeds(name, value.get("seeds")),
    )


def _relation_seeds(name: str, seeds: Any) -> dict[str, float]:
    """`relations.<id>.seeds` of a several-seed LAMA summary: seed -> P@1."""
    if seeds is None:
        return {}
    if not isinstance(seeds, dict) or not all(_is_number(v) for v in seeds.values()):
        raise _Invalid(f"field 'relations.{name}.seeds' is not an object of finite numbers")
    return {str(k): float(v) for k, v in seeds.items()}


def _relation_reasons(relations: tuple[RelationResult, ...]) -> tuple[str, ...]:
    """'P131, P17: test file rebuilt' - partial relations grouped by their reason."""
    by_reason: dict[str, list[str]] = {}
    for r in relations:
        if r.partial:
            by_reason.setdefault(r.partial_reason or "partial test set", []).append(r.relation)
    return tuple(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def _reasons(partial: bool, reasons: tuple[str, ...]) -> tuple[str, ...]:
    if not partial:
        return ()
    return reasons or ("marked partial by the run, no reason recorded",)


def _notes(data: dict[str, Any]) -> tuple[str, ...]:
    notes = data.get("notes") or []
    if not isinstance(notes, list):
        raise _Invalid("field 'notes' is not a list")
    return tuple(str(n) for n in notes)


def _backbone_name(data: dict[str, Any]) -> str:
    """The short name the run filed its results under (`backbone_name`); else what `--backbone` was given."""
    name = data.get("backbone_name")
    return name if isinstance(name, str) and name else _get(data, "config.backbone", str)


def _backbone_kind(data: dict[str, Any]) -> Optional[str]:
    """`masked`/`causal` if the run recorded it (config.backbone_kind, environment.backbone_kind or is_causal)."""
    for section in ("config", "environment"):
        block = data.get(section)
        if not isinstance(block, dict):
            continue
        if block.get("backbone_kind") in ("masked", "causal"):
            return block["backbone_kind"]
        if isinstance(block.get("is_causal"), bool):
            return "causal" if block["is_causal"] else "masked"
    return None


def _provenance(data: dict[str, Any]) -> dict[str, Any]:
    env = data.get("environment")
    wall = data.get("wall_time_s")
    config = data.get("config")
    return {
        "config": config if isinstance(config, dict) else {},
        "command": str(data.get("command") or ""),
        "git_commit": str(data.get("git_commit") or ""),
        "environment": env if isinstance(env, dict) else {},
        "wall_time_s": float(wall) if _is_number(wall) else None,
    }


_MISSING = object()


def _get(data: dict[str, Any], dotted: str, kind: type, default: Any = _MISSING) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node or node[part] is None:
            if default is not _MISSING:
                return default
            raise _Invalid(f"field '{dotted}' is missing")
        node = node[part]
    if not isinstance(node, kind) or (kind is str and not node.strip()):
        raise _Invalid(f"field '{dotted}' is not a {'non-empty string' if kind is str else kind.__name__}: {node!r}")
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(data: dict[str, Any], dotted: str) -> float:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _Invalid(f"field '{dotted}' is missing")
        node = node[part]
    if not _is_number(node):
        raise _Invalid(f"field '{dotted}' is not a finite number: {node!r}")
    return float(node)
