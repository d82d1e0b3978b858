"""Match our results to the paper's cells and lay them out as the paper's tables.

Which paper table a result belongs to (`route`), which paper row it is compared with (`compared_row`,
including the nearest-row rule for backbones the paper did not use) and how a table's grid is filled
(`build_views`) are decided here and nowhere else.

Nearest-row rule: a backbone the paper did not use in a table is compared with the paper's row of the same
method on the backbone that `NEAREST_PAPER_BACKBONE` names for its family (masked or causal): the smallest
backbone of that family in the table. Where a table has no backbone of that family (LAMA-34k has no causal
LM; the few-shot table has only ALBERT) the table's own smallest backbone is named instead, and the row says
so. The family comes from `names.BACKBONE_FAMILY`, else from `backbone_kind` (or `is_causal`) recorded in the
result's config or environment; a backbone of unknown family is compared only where the table names one
backbone for both families (Table 5), and is otherwise shown uncompared, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from repro.methods import PAPER_ENCODER, get_method, recorded_encoder
from repro.report.average import avg_tasks, superglue_average
from repro.report.names import (
    backbone_family,
    method_rank,
    metric_label,
    our_method,
    our_metric_key,
    paper_method,
    paper_methods,
    task_display_name,
)
from repro.report.paper import PaperCell, PaperTables
from repro.report.results import Result


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    in_paper: bool = True

    @property
    def label(self) -> str:
        return f"{self.task} {metric_label(self.metric)}".strip()

    @property
    def is_avg(self) -> bool:
        return self.task == "Avg"


@dataclass(frozen=True)
class TableSpec:
    """One output table: a paper table (or none), the kind of method mapping it uses, and its columns."""

    key: str
    paper_table: Optional[str]
    kind: str
    title: str
    columns: tuple[Column, ...]
    extra_columns: tuple[Column, ...] = ()


LAMA_COLUMNS = (Column("LAMA", "P@1"),)
LAMA_EXTRA = (Column("LAMA", "micro", in_paper=False),)
AVG_COLUMN = Column("Avg", "avg")
# (key, paper table, kind, title, benchmark): the output tables; SuperGLUE columns come from the task declarations.
_TABLES: tuple[tuple[str, Optional[str], str, str, str], ...] = (
    ("table1", "Table 1", "reference", "Table 1: LAMA P17 with manual prompt variants, BERT-base", "lama-p17"),
    ("table2_left", "Table 2 left", "lama", "Table 2 (left): LAMA-34k P@1, frozen LM", "lama"),
    ("table2_right", "Table 2 right", "lama", "Table 2 (right): LAMA-29k P@1", "lama"),
    ("table3", "Table 3", "supervised", "Table 3: fully supervised SuperGLUE dev, base-size backbones", "superglue"),
    ("table4", "Table 4", "supervised", "Table 4: fully supervised SuperGLUE dev, large backbones", "superglue"),
    ("table5", "Table 5", "fewshot", "Table 5: few-shot SuperGLUE (FewGLUE, 32 examples), dev set", "superglue"),
    ("lama_full", None, "lama", "LAMA P@1 with the full vocabulary (no paper table)", "lama"),
)
LAMA_TABLE_BY_VOCAB = {"34k": "table2_left", "29k": "table2_right", "full": "lama_full"}


def superglue_columns() -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """(columns, extra columns) of the SuperGLUE tables, from the task declarations in registry order: every
    metric of the tasks in the paper's tables, then Avg; then the other tasks' metrics (ReCoRD, diagnostics,
    a task registered at runtime), shown where some result has them. Read on each call, so that a task
    registered after import gets its columns."""
    from repro.tasks.registry import all_tasks

    tasks = all_tasks()
    main = tuple(Column(t.display_name, m) for t in tasks if t.in_paper_tables for m in t.metrics)
    extra = tuple(Column(t.display_name, m, False) for t in tasks if not t.in_paper_tables for m in t.metrics)
    return main + (AVG_COLUMN,), extra


def specs() -> tuple[TableSpec, ...]:
    """Every output table with its columns, in output order."""
    superglue = superglue_columns()
    columns = {"lama-p17": ((Column("LAMA-P17", "P@1"),), ()), "lama": (LAMA_COLUMNS, LAMA_EXTRA),
               "superglue": superglue}
    return tuple(TableSpec(key, table, kind, title, *columns[bench]) for key, table, kind, title, bench in _TABLES)


def spec_by_key(key: str) -> TableSpec:
    return next(s for s in specs() if s.key == key)


def lama_spec(vocab: str) -> TableSpec:
    """The output table of a LAMA vocabulary: Table 2 right (29k), Table 2 left (34k), none for the full one."""
    return spec_by_key(LAMA_TABLE_BY_VOCAB[vocab])


NEAREST_PAPER_BACKBONE: dict[str, dict[str, str]] = {
    "Table 2 left": {"masked": "bert-base-cased", "causal": "bert-base-cased"},
    "Table 2 right": {"masked": "bert-base-cased", "causal": "gpt2-medium"},
    "Table 3": {"masked": "bert-base-cased", "causal": "gpt2"},
    "Table 4": {"masked": "bert-large-cased", "causal": "gpt2-medium"},
    "Table 5": {"masked": "albert-xxlarge-v2", "causal": "albert-xxlarge-v2"},
}


@dataclass(frozen=True)
class Row:
    """A table row: the method and backbone shown, and the paper row its cells are compared with."""

    method: str
    backbone: str
    paper_method: Optional[str]
    paper_backbone: Optional[str]
    rule: str
    our_method: Optional[str] = None

    @property
    def compared(self) -> bool:
        return self.paper_backbone is not None

    @property
    def same_backbone(self) -> bool:
        return self.paper_backbone == self.backbone

    @property
    def label(self) -> str:
        return f"{self.method} | {self.backbone}"


@dataclass(frozen=True)
class OursValue:
    """Our number for one cell; `value` None with `incomplete` set for an Avg lacking tasks."""

    value: Optional[float]
    std: Optional[float] = None
    n_seeds: Optional[int] = 1
    partial: bool = False
    sources: tuple[Result, ...] = ()
    incomplete: str = ""


@dataclass(frozen=True)
class PaperValue:
    """The paper's number for one cell; status `computed` marks an Avg computed here from the paper's cells."""

    value: Optional[float]
    text: str
    status: str
    note: str = ""
    cell: Optional[PaperCell] = None


@dataclass(frozen=True)
class Cell:
    row: Row
    column: Column
    ours: Optional[OursValue]
    paper: Optional[PaperValue]

    @property
    def delta(self) -> Optional[float]:
        if self.ours is None or self.paper is None or self.ours.value is None or self.paper.value is None:
            return None
        return self.ours.value - self.paper.value


@dataclass
class TableView:
    """A filled table: rows x columns of cells, plus the results that went into it."""

    spec: TableSpec
    setting: str
    version: str
    rows: list[Row]
    columns: list[Column]
    grid: list[list[Cell]]
    results: list[Result] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        return [c for line in self.grid for c in line]

    @property
    def has_ours(self) -> bool:
        return bool(self.results)


@dataclass
class Matching:
    views: list[TableView]
    warnings: list[str]


def route(result: Result, paper: PaperTables) -> TableSpec:
    """The output table a result belongs to: by vocabulary (LAMA) or setting and backbone size (SuperGLUE)."""
    if result.kind == "lama":
        return lama_spec(result.setting)
    if result.setting == "fewshot":
        return spec_by_key("table5")
    if result.backbone in paper.backbones("Table 4"):
        return spec_by_key("table4")
    return spec_by_key("table3")


def compared_row(spec: TableSpec, paper: PaperTables, result: Result) -> Row:
    """The row a result goes into, and which paper row (if any) it is compared with, and why."""
    method = result.method
    pm = paper_method(spec.kind, method)
    label = (pm or f"{method} (ours)") + variant_label(result)
    table = spec.paper_table
    if table is None:
        return Row(label, result.backbone, pm, None, "not compared: the paper has no table for this setting", method)
    if pm is None:
        return Row(label, result.backbone, None, None, f"not compared: the paper has no row for our `{method}` in {table}", method)
    if paper.has_row(table, pm, result.backbone):
        return Row(label, result.backbone, pm, result.backbone, "same backbone as the paper", method)
    family = backbone_family(result.backbone, result.backbone_kind)
    choices = NEAREST_PAPER_BACKBONE.get(table, {})
    nearest = choices.get(family) if family else _only(choices.values())
    if nearest is None:
        return Row(label, result.backbone, pm, None,
                   "not compared: backbone family unknown (record config.backbone_kind in the result)", method)
    if not paper.has_row(table, pm, nearest):
        return Row(label, result.backbone, pm, None, f"not compared: {table} has no {pm} row", method)
    if family is None:
        rule = f"backbone family unknown; {table} ran {pm} only on {nearest}"
    elif backbone_family(nearest) == family:
        rule = f"nearest {family} backbone of {table}"
    else:
        rule = f"{table} has no {family} LM; its {nearest} row"
    return Row(label, result.backbone, pm, nearest, rule, method)


def encoder_of(result: Result) -> Optional[str]:
    """The prompt encoder a run trained (files older than the field: the default, LSTM); None for a method
    without one (such methods record the default, which they never read)."""
    if not get_method(result.method, result.kind).uses_encoder:
        return None
    return recorded_encoder(result.config)


def encoder_note(result: Result) -> str:
    """"encoder mlp" for a run whose prompt encoder is not the paper's LSTM (whatever its preset's default), ""
    otherwise."""
    encoder = encoder_of(result)
    return f"encoder {encoder}" if encoder not in (None, PAPER_ENCODER) else ""


def variant_label(result: Result) -> str:
    """" (encoder mlp, paper preset)" for a run off the paper's encoder or the default preset, "" otherwise: such
    runs get rows of their own instead of competing with the default run for one row."""
    from repro.experiment.config import RunConfig

    preset = f"{result.preset} preset" if result.preset and result.preset != RunConfig.DEFAULT_PRESET else ""
    parts = [part for part in (encoder_note(result), preset) if part]
    return f" ({', '.join(parts)})" if parts else ""


def _only(values) -> Optional[str]:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def build_views(paper: PaperTables, results: list[Result]) -> Matching:
    """Every output table: the paper tables always, the no-paper tables only when a result needs them."""
    tables = specs()
    placed: dict[str, dict[Row, dict[Column, tuple[OursValue, Result]]]] = {s.key: {} for s in tables}
    used: dict[str, list[Result]] = {s.key: [] for s in tables}
    warnings: list[str] = []
    for result in results:
        spec = route(result, paper)
        row = compared_row(spec, paper, result)
        slots = placed[spec.key].setdefault(row, {})
        used[spec.key].append(result)
        for column in spec.columns + spec.extra_columns:
            value = ours_for(result, column)
            if value is None:
                continue
            if column in slots:
                warnings.append(f"two results for {spec.paper_table or spec.key} | {row.label} | {column.label}: "
                                f"{slots[column][1].display} and {result.display}; using the first")
                continue
            slots[column] = (value, result)
    views = []
    for spec in tables:
        if spec.paper_table is None and not used[spec.key]:
            continue
        views.append(_view(spec, paper, placed[spec.key], used[spec.key]))
    return Matching(views, warnings)


def ours_for(result: Result, column: Column) -> Optional[OursValue]:
    """Our number for a column from one result (None: the result is of another task, or lacks the metric)."""
    if column.is_avg:
        return None
    if result.kind == "superglue" and task_display_name(result.task) != column.task:
        return None
    key = our_metric_key(result.kind, column.metric)
    if key not in result.metrics:
        return None
    std = result.std.get(key) if result.n_seeds > 1 else None
    return OursValue(result.metrics[key], std, result.n_seeds, result.partial, (result,))


def _view(spec: TableSpec, paper: PaperTables, placed: dict[Row, dict[Column, tuple[OursValue, Result]]],
          results: list[Result]) -> TableView:
    table = spec.paper_table
    rows: list[Row] = []
    if table is not None:
        for method, backbone in paper.rows(table):
            ours_row = next((r for r in placed if r.paper_method == method and r.backbone == backbone
                             and r.same_backbone), None)
            rows.append(ours_row or Row(method, backbone, method, backbone, "paper row", our_method(spec.kind, method)))
    extra = [r for r in placed if r not in rows]
    paper_order = list(dict.fromkeys(m for m, _ in paper.rows(table))) if table else []

    def order(row: Row) -> tuple[int, int, str, str]:
        in_paper = paper_order.index(row.paper_method) if row.paper_method in paper_order else len(paper_order)
        return (in_paper, method_rank(row.our_method or ""), row.method, row.backbone)

    extra.sort(key=order)
    rows.extend(extra)
    present_extra = [c for c in spec.extra_columns if any(c in slots for slots in placed.values())]
    columns = list(spec.columns) + present_extra
    grid = [[_cell(spec, paper, row, column, placed.get(row, {})) for column in columns] for row in rows]
    setting = paper.setting(table) if table else ""
    version = paper.in_table(table)[0].version if table and paper.in_table(table) else ""
    return TableView(spec, setting, version, rows, columns, grid, sorted(results, key=lambda r: r.display))


def _cell(spec: TableSpec, paper: PaperTables, row: Row, column: Column,
          slots: dict[Column, tuple[OursValue, Result]]) -> Cell:
    if column.is_avg:
        return Cell(row, column, _ours_avg(slots), _paper_avg(spec, paper, row))
    ours = slots[column][0] if column in slots else None
    return Cell(row, column, ours, _paper_value(spec, paper, row, column))


def _paper_value(spec: TableSpec, paper: PaperTables, row: Row, column: Column) -> Optional[PaperValue]:
    if spec.paper_table is None or row.paper_method is None or row.paper_backbone is None or not column.in_paper:
        return None
    cell = paper.get(spec.paper_table, row.paper_method, row.paper_backbone, column.task, column.metric)
    if cell is None:
        return None
    return PaperValue(cell.value, cell.text, cell.status, cell.note, cell)


def _ours_avg(slots: dict[Column, tuple[OursValue, Result]]) -> Optional[OursValue]:
    in_avg = avg_tasks()
    parts = {(c.task, c.metric): v for c, (v, _) in slots.items() if c.task in in_avg}
    if not parts:
        return None
    avg = superglue_average({k: v.value for k, v in parts.items()})
    sources = tuple(dict.fromkeys(s for v in parts.values() for s in v.sources))
    partial = any(v.partial for v in parts.values())
    incomplete = "" if avg.complete else f"incomplete {avg.tasks_present}/{avg.tasks_needed}"
    return OursValue(avg.value, None, None, partial, sources, incomplete)


def _paper_avg(spec: TableSpec, paper: PaperTables, row: Row) -> Optional[PaperValue]:
    """The printed Avg where the paper has one, else the paper's own cells averaged the paper's way."""
    if spec.paper_table is None or row.paper_method is None or row.paper_backbone is None:
        return None
    printed = paper.get(spec.paper_table, row.paper_method, row.paper_backbone, "Avg", "avg")
    if printed is not None:
        return PaperValue(printed.value, printed.text, printed.status, printed.note, printed)
    values = {}
    for task, metrics in avg_tasks().items():
        for metric in metrics:
            cell = paper.get(spec.paper_table, row.paper_method, row.paper_backbone, task, metric)
            values[(task, metric)] = cell.value if cell is not None else None
    avg = superglue_average(values)
    if not avg.complete:
        return None
    return PaperValue(avg.value, f"{avg.value:.1f}", "computed", "Avg computed here from the paper's cells")


def reproducible(spec: TableSpec, row: Row) -> bool:
    """Whether a method of ours reproduces this paper row (baselines like LPAQA, PET, GPT-3 are reference only)."""
    return row.paper_method is not None and row.paper_method in paper_methods(spec.kind)
