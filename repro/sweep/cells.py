"""A sweep's work: groups (one existing run: a LAMA config over its relations, a SuperGLUE task over its seeds),
their cells (each exactly one run of the same driver, `run_lama` or `run_superglue`, on one unit) and the
assembly that follows a group's cells.

A cell is one LAMA relation (`run_lama` with `relations=[rid]`) or one SuperGLUE task and seed (`run_superglue`
with `seeds=[s]`; AX-b and AX-g are evaluated by their RTE model, so they are part of the RTE cells). Cells run
with `sequential=True`: one relation or seed alone, never picked up by a joint pass (not part of the
fingerprint, so their results are the run's). SuperGLUE seeds that depend on each other stay one cell: under
fidelity item `seed_rule=once` each seed continues the RNG stream of the one before, and supervised P-tuning
searches its pattern on the first seed (`repro.experiment.superglue.Engine`, `searches_patterns`).

After a group's cells are done, its assembly reruns the group's whole config: the driver finds every unit
finished (LAMA: the relation files of the run folder; SuperGLUE: the seed records in its .resume/) and only writes the
summary / per-task files, so `python -m repro report` reads what the scripts would have written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from repro.errors import ConfigError
from repro.sweep.spec import Grid, backbone_kind, config_class

Unit = Union[str, int, tuple]


@dataclass
class Group:
    """One run of an existing driver: its config's keyword arguments, training overrides and units."""

    benchmark: str
    kwargs: dict[str, Any]
    train: dict[str, Any]
    key: str  # where its results live: lama/<backbone>/<method>-<vocab>, superglue/<setting>/<backbone>/<method>/<task>
    units: list[Unit]  # relation ids, seeds, or one tuple of coupled seeds
    kind: str = ""  # masked | causal ("" unknown)
    backbone_name: str = ""  # the name results are filed under

    def config(self, **changes: Any):
        """The group's run config (with `changes`), training overrides applied as the command line does."""
        config = config_class(self.benchmark)(**{**self.kwargs, **changes})
        if self.train:
            config.train = replace(config.train, **self.train)
        return config

    def cells(self) -> list["Cell"]:
        return [Cell(self, unit) for unit in self.units]

    def assembly(self) -> "Assembly":
        return Assembly(self)

    def describe(self) -> str:
        """The axes a reader needs beside the key: preset and seeds."""
        config = self.config()
        return f"preset {config.preset}, seeds {','.join(map(str, config.seeds))}"


@dataclass
class Cell:
    """Exactly one existing run of one unit of a group."""

    group: Group
    unit: Unit

    @property
    def benchmark(self) -> str:
        return self.group.benchmark

    @property
    def name(self) -> str:
        if isinstance(self.unit, tuple):
            return "seeds" + "+".join(map(str, self.unit))
        return f"seed{self.unit}" if isinstance(self.unit, int) else str(self.unit)

    @property
    def key(self) -> str:
        return f"{self.group.key}/{self.name}"

    @property
    def seeds(self) -> list[int]:
        """SuperGLUE: the seeds this cell runs."""
        return list(self.unit) if isinstance(self.unit, tuple) else [int(self.unit)]

    def config(self):
        if self.benchmark == "lama":
            return self.group.config(relations=[self.unit], sequential=True)
        return self.group.config(seeds=self.seeds, sequential=True)


@dataclass
class Assembly:
    """The group's whole config once its cells are done: reuses every unit, writes the summary files."""

    group: Group
    benchmark: str = field(init=False)

    def __post_init__(self) -> None:
        self.benchmark = self.group.benchmark

    @property
    def key(self) -> str:
        return f"{self.group.key}/assemble"

    def config(self):
        return self.group.config(sequential=True)


WorkItem = Union[Cell, Assembly]


def run_item(item: WorkItem, where: dict[str, Any]) -> Any:
    """Run a cell or an assembly through its benchmark's driver (the one `python -m repro lama|superglue` runs)."""
    from repro.cli import RUN_COMMANDS, _load

    return _load(RUN_COMMANDS[item.benchmark].driver)(item.config(), **where)


# ------------------------------------------------------------------------------------------ expansion
def expand(grids: Sequence[Grid], relation_ids: Optional[Sequence[str]] = None) -> list[Group]:
    """Every group of the grids, configs built (and so validated) now, before anything runs. `relation_ids`:
    every LAMA relation of the data root (the units of `relations: all`)."""
    from repro.core.backbone import short_name

    groups: list[Group] = []
    for grid in grids:
        for backbone in grid.backbones:
            kind, name = backbone_kind(backbone), short_name(backbone)
            for preset in grid.presets:
                for method in grid.methods:
                    base = {**grid.config, "backbone": backbone, "method": method, "preset": preset}
                    if grid.seeds is not None:
                        base["seeds"] = list(grid.seeds)
                    if grid.benchmark == "lama":
                        groups += [group for vocab in grid.vocabs
                                   for group in _lama_groups(grid, base, vocab, kind, name, relation_ids)]
                    else:
                        groups += [_superglue_group(grid, base, setting, task, kind, name)
                                   for setting in grid.settings for task in _tasks(grid)]
    seen: dict[str, Group] = {}
    for group in groups:
        if group.key in seen:
            raise ConfigError(f"two runs of the sweep write {group.key} ({seen[group.key].describe()}; "
                              f"{group.describe()}): split them into separate sweeps or results folders")
        seen[group.key] = group
    return groups


def _tasks(grid: Grid) -> list[str]:
    from repro.tasks.registry import trainable_task_names

    return list(grid.tasks) if grid.tasks is not None else list(trainable_task_names())


def _lama_groups(grid: Grid, base: dict[str, Any], vocab: str, kind: str, name: str,
                 relation_ids: Optional[Sequence[str]]) -> list[Group]:
    """One group per seed (a seed's relation files have their own folder, `repro.results.seed_folder`;
    the run's one summary averages them); a method that trains nothing, the first seed only (as `run_lama`)."""
    from repro.experiment.lama import run_name
    from repro.results import seed_folder

    units = list(grid.relations) if grid.relations is not None else list(relation_ids or ())
    if not units:
        raise ConfigError("the sweep's LAMA relations are unknown: give relations or a data root with LAMA")
    kwargs = {**base, "vocab": vocab, "relations": grid.relations, "backbone_kind": kind}
    config = Group("lama", kwargs, dict(grid.train), "", units, kind, name).config()
    seeds = config.seeds[:1] if config.zero_shot else config.seeds
    groups = []
    for seed in seeds:
        group = Group("lama", {**kwargs, "seeds": [seed]}, dict(grid.train), "", list(units), kind, name)
        group.key = seed_folder(Path("lama") / name / run_name(group.config()), seed).as_posix()
        groups.append(group)
    return groups


def _superglue_group(grid: Grid, base: dict[str, Any], setting: str, task: str, kind: str, name: str) -> Group:
    from repro.experiment.superglue import output_dir

    kwargs = {**base, "setting": setting, "task": task}
    group = Group("superglue", kwargs, dict(grid.train), "", [], kind, name)
    config = group.config()
    group.key = (output_dir(Path(), name, config) / task).as_posix()  # the run's folder, variant included
    if config.zero_shot:  # evaluated once, with the first seed (run_superglue)
        group.units = [config.seeds[0]]
    elif seeds_coupled(config):
        group.units = [tuple(config.seeds)]
    else:
        group.units = list(config.seeds)
    return group


def seeds_coupled(config) -> bool:
    """Whether a SuperGLUE config's seeds must run in one process, in order: `seed_rule=once` (each seed continues
    the stream of the one before) or a pattern search on the first seed (supervised P-tuning)."""
    from repro.experiment.superglue import RunPlan, searches_patterns
    from repro.tasks.registry import get_task

    if config.choices.seed_rule == "once":
        return True
    plan = RunPlan(config, get_task(config.train_task), [], config.method_entry, None, list(config.seeds))
    return searches_patterns(plan)
