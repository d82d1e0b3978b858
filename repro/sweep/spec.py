"""A sweep spec: which runs a sweep covers, read from a YAML file or the same keys given as flags.

    benchmark: lama                      # lama | superglue
    backbones: [smollm2-135m]            # embedded names, local model directories, hub ids the paper used
    methods: [mp, ptuning]               # repro/methods.py
    presets: [cpu]
    vocabs: [29k]                        # lama
    relations: all                       # lama: relation ids or all
    settings: [fewshot]                  # superglue
    tasks: all                           # superglue: task names or all (AX-b/AX-g follow their RTE model)
    seeds: 3                             # a count from the config's first default seed, or a list
    config: {dtype: float32}             # any field of the benchmark's config dataclass
    train: {max_steps: 64}               # any field of repro.core.training.TrainConfig
    grids:                               # optional: blocks that override the keys above, one product each
      - {vocabs: [34k], backbones: [bert-base-cased], methods: [mp, ptuning]}

Everything is checked here, before anything runs: an unknown key, benchmark, method, preset, vocabulary,
setting, task, relation, backbone, config field or train field is a one-line `ConfigError` that names it and
the valid choices. Values are checked again by the config dataclasses when the cells are built
(`repro.sweep.cells.expand`), still before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from repro.errors import ConfigError

BENCHMARKS = ("lama", "superglue")
# Keys that take a list (a scalar or a comma-separated string is one list), by plural; singulars are aliases.
LIST_KEYS = ("backbones", "methods", "presets", "vocabs", "relations", "settings", "tasks", "seeds")
ALIASES = {key[:-1]: key for key in LIST_KEYS}
ONLY_FOR = {"vocabs": "lama", "relations": "lama", "settings": "superglue", "tasks": "superglue"}
MAPPING_KEYS = ("config", "train")
TOP_KEYS = ("benchmark", "description", "grids") + LIST_KEYS + MAPPING_KEYS
ALL = "all"
# Config fields a spec sets through its axes (or that the run fills in), not through `config:`.
AXIS_FIELDS = {"backbone": "backbones", "method": "methods", "preset": "presets", "seeds": "seeds",
               "vocab": "vocabs", "relations": "relations", "task": "tasks", "setting": "settings",
               "backbone_kind": None, "train": "train"}
# Hub ids of the backbones the paper's tables use (the hub cannot be asked offline, so they are listed).
PAPER_HUB_BACKBONES = ("bert-base-cased", "bert-large-cased", "roberta-base", "roberta-large", "gpt2",
                       "gpt2-medium", "gpt2-large", "gpt2-xl", "albert-xxlarge-v2")


@dataclass
class Grid:
    """One product of axes: every backbone x method x preset x vocab/setting (x task) of one benchmark."""

    benchmark: str
    backbones: list[str] = field(default_factory=lambda: ["smollm2-135m"])
    methods: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=lambda: ["cpu"])
    vocabs: list[str] = field(default_factory=lambda: ["29k"])
    relations: Optional[list[str]] = None  # None: all
    settings: list[str] = field(default_factory=lambda: ["fewshot"])
    tasks: Optional[list[str]] = None  # None: every trainable task
    seeds: Optional[list[int]] = None  # None: the config's default seeds
    config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


def config_class(benchmark: str) -> type:
    """The run config dataclass of a benchmark (imported here: it imports torch)."""
    if benchmark == "lama":
        from repro.experiment.lama import LamaConfig
        return LamaConfig
    from repro.experiment.superglue_config import SuperGLUEConfig
    return SuperGLUEConfig


def read_spec(path: Optional[Path]) -> dict[str, Any]:
    """The YAML mapping of a spec file ({} without one)."""
    if path is None:
        return {}
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping of keys ({', '.join(TOP_KEYS)})")
    return data


def parse_spec(data: Mapping[str, Any], *, overrides: Optional[Mapping[str, Any]] = None,
               relation_ids: Optional[Iterable[str]] = None) -> list[Grid]:
    """The grids of a spec mapping; `overrides` (from flags) replace top-level keys. `relation_ids`: the LAMA
    relations of the data root (checked against only when given)."""
    top = _normalise(data, "spec")
    top.update(_normalise(overrides or {}, "flags"))
    benchmark = top.pop("benchmark", None)
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"sweep benchmark {benchmark!r} unknown or missing; valid: {', '.join(BENCHMARKS)}")
    top.pop("description", None)
    blocks = top.pop("grids", None) or [{}]
    if not isinstance(blocks, list):
        raise ConfigError("sweep key grids takes a list of mappings")
    relation_ids = None if relation_ids is None else list(relation_ids)
    grids = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ConfigError(f"sweep grids[{i}] must be a mapping, got {block!r}")
        values = {**top, **_normalise(block, f"grids[{i}]", nested=True)}
        grids.append(_grid(benchmark, values, relation_ids))
    return grids


def _normalise(data: Mapping[str, Any], where: str, *, nested: bool = False) -> dict[str, Any]:
    """Keys as their plural spelling; unknown keys refused by name."""
    valid = tuple(k for k in TOP_KEYS if not nested or k not in ("benchmark", "grids", "description"))
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = ALIASES.get(key, key)
        if key not in valid:
            raise ConfigError(f"unknown sweep key {key!r} in the {where}; valid: {', '.join(valid)}")
        out[key] = value
    return out


def as_list(value: Any) -> list[Any]:
    """A YAML value or flag as a list: a list as is, a comma-separated string split, a scalar as one item."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def _grid(benchmark: str, values: dict[str, Any], relation_ids: Optional[list[str]]) -> Grid:
    for key, only in ONLY_FOR.items():
        if key in values and only != benchmark:
            raise ConfigError(f"sweep key {key!r} applies to {only} only, not to {benchmark}")
    cls = config_class(benchmark)
    grid = Grid(benchmark)
    for key in ("backbones", "methods", "presets", "vocabs", "settings"):
        if key in values:
            setattr(grid, key, [str(v) for v in as_list(values[key])])
    if not grid.methods:
        grid.methods = list(cls.method_choices())
    _check_choices("method", grid.methods, cls.method_choices())
    _check_choices("preset", grid.presets, tuple(cls.PRESETS))
    for backbone in grid.backbones:
        check_backbone(backbone)
    if benchmark == "lama":
        from repro.tasks.lama import VOCAB_STRATEGIES

        _check_choices("vocab", grid.vocabs, VOCAB_STRATEGIES)
        grid.relations = _names_or_all(values.get("relations"))
        if grid.relations is not None and relation_ids is not None:
            _check_choices("relation", grid.relations, relation_ids)
    else:
        from repro.tasks.base import SETTINGS

        _check_choices("setting", grid.settings, SETTINGS)
        grid.tasks = _tasks(values.get("tasks"))
    if "seeds" in values:
        grid.seeds = _seeds(values["seeds"], cls.DEFAULT_SEEDS[0])
    grid.config = _mapping(values.get("config"), "config", _config_fields(cls))
    grid.train = _mapping(values.get("train"), "train", _train_fields())
    return grid


def _check_choices(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    valid = tuple(valid)
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))} in the sweep; valid: {', '.join(valid)}")


def _names_or_all(value: Any) -> Optional[list[str]]:
    if value is None:
        return None
    names = [str(v) for v in as_list(value)]
    return None if names == [ALL] else names


def _tasks(value: Any) -> Optional[list[str]]:
    """Task names (None: every trainable task); a diagnostic names the task whose model evaluates it."""
    from repro.tasks.registry import get_task, task_names

    names = _names_or_all(value)
    if names is None:
        return None
    _check_choices("task", names, task_names())
    trained = []
    for name in names:
        name = get_task(name).trained_on or name
        if name not in trained:
            trained.append(name)
    return trained


def _seeds(value: Any, first: int) -> list[int]:
    """A count N (seeds first, first+1, ...), a YAML list, or the command line's text (a count or "S1,S2")."""
    from repro.experiment.config import seeds_from_count, seeds_from_text

    if isinstance(value, int) and not isinstance(value, bool):
        return seeds_from_count(value, first, "sweep seeds")
    if isinstance(value, str):
        return seeds_from_text(value, first, "sweep seeds")
    try:
        return [int(s) for s in as_list(value)]
    except (TypeError, ValueError):
        raise ConfigError(f"sweep seeds take a count or a list of integers, got {value!r}") from None


def _config_fields(cls: type) -> dict[str, Optional[str]]:
    """The config fields a `config:` mapping may set (None), and the axis key for the ones it may not."""
    return {f.name: AXIS_FIELDS.get(f.name) for f in fields(cls)}


def _train_fields() -> dict[str, Optional[str]]:
    from repro.core.training import TrainConfig

    return {f.name: None for f in fields(TrainConfig)}


def _mapping(value: Any, key: str, valid: dict[str, Optional[str]]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"sweep key {key!r} takes a mapping of field: value, got {value!r}")
    allowed = [name for name, axis in valid.items() if axis is None and name != "backbone_kind"]
    for name in value:
        if name not in valid:
            raise ConfigError(f"unknown {key} field {name!r} in the sweep; valid: {', '.join(allowed)}")
        if valid[name] is not None or name == "backbone_kind":
            where = f"the sweep key {valid[name]!r}" if valid[name] else "the loaded backbone"
            raise ConfigError(f"{key} field {name!r} is set by {where}, not under {key}:")
    return dict(value)


# ------------------------------------------------------------------------------------------- backbones
def check_backbone(name: str) -> None:
    """An embedded name, an existing local model directory, a hub id the paper used, or `org/model` on the hub.
    A path (it starts with /, . or ~) must exist; a bare unknown name is refused with the choices."""
    from repro.core.backbone import EMBEDDED

    if name in EMBEDDED or name in PAPER_HUB_BACKBONES:
        return
    path = Path(name).expanduser()
    if name.startswith(("/", ".", "~")):
        if not path.is_dir():
            raise ConfigError(f"backbone directory {name!r} does not exist")
        return
    if "/" in name.strip("/") or path.is_dir():
        return  # a hub id org/model (or a relative directory): the hub cannot be asked before the run
    raise ConfigError(f"unknown backbone {name!r}; valid: {', '.join(list(EMBEDDED) + list(PAPER_HUB_BACKBONES))}, "
                      "a local model directory or a hub id org/model")


def backbone_kind(name: str) -> str:
    """masked | causal without loading the weights ("" when unknown): LAMA's fingerprint holds it, so the sweep
    needs it to recognise finished relations. Embedded checkpoints are causal (`embedded_checkpoint`), a local
    directory says so in its config, a hub id is looked up among the known families (the hub is not asked)."""
    from repro.core.backbone import EMBEDDED, detect_causal
    from repro.report.names import BACKBONE_FAMILY

    if name in EMBEDDED:
        return "causal"
    if Path(name).expanduser().is_dir():
        from transformers import AutoConfig

        try:
            return "causal" if detect_causal(AutoConfig.from_pretrained(str(Path(name).expanduser()))) else "masked"
        except (OSError, ValueError, ConfigError):
            return ""
    return BACKBONE_FAMILY.get(name, "")
