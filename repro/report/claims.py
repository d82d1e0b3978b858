"""The paper's claims that runs here can test, one verdict per claim and backbone, from the result files.

The paper's claims are comparisons between methods, and those can be tested on the backbones this machine loads
even where its absolute numbers cannot. A claim says that side A beats side B (a method, with its prompt
encoder) in one setting: LAMA (macro P@1 over the relations), few-shot or supervised SuperGLUE (per seed, the
mean over the tasks both sides ran of each task's mean metric, the paper's Avg rule, `repro.report.average`).
Sides are compared per backbone and preset, on the seeds each ran:
- the spread is sqrt(std_A^2 + std_B^2), std the sample standard deviation over seeds (0 for a zero-shot method,
  which has no seed to vary);
- a trained side with one seed has no spread: `inconclusive (one seed)`;
- |A - B| within the spread: `inconclusive within the seed spread`;
- otherwise `reproduced` when A - B has the paper's sign, `not reproduced` when not.
A claim with no result on either side is listed as `not run`. `tests/test_claims.py` rebuilds the section from the
committed result files and compares it with REPRODUCING.md, so a result that changes a verdict fails it until the
report is regenerated.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from repro.methods import PAPER_ENCODER, get_method
from repro.report.average import avg_tasks
from repro.report.match import encoder_of
from repro.report.paper import PaperTables
from repro.report.results import Result

REPRODUCED, NOT_REPRODUCED, SPREAD, ONE_SEED, NOT_RUN = (
    "reproduced", "not reproduced", "inconclusive within the seed spread", "inconclusive (one seed)", "not run")
LAMA_METRIC = "macro_p_at_1"


@dataclass(frozen=True)
class Side:
    """One side of a claim: a method of the benchmark, with its prompt encoder where it has one."""

    method: str
    label: str
    encoder: str = PAPER_ENCODER


@dataclass(frozen=True)
class PaperPair:
    """Where the paper states the comparison: A's and B's cells of one table and backbone (`task` "Avg" of
    Table 5 is the Avg rule over its task cells)."""

    table: str
    backbone: str
    method_a: str
    method_b: str
    task: str = "LAMA"
    metric: str = "P@1"


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    setting: str  # "lama" (29k) | "fewshot" | "supervised"
    a: Side
    b: Side
    paper: tuple[PaperPair, ...] = ()  # empty: the paper states it without a number
    why_not: str = ""  # a likely reason, shown where the verdict is `not reproduced`


_GPT_LAMA = ("gpt2-medium", "gpt2-xl")
CLAIMS: tuple[Claim, ...] = (
    Claim("lama-ptuning-mp", "P-tuning beats manual prompts on LAMA with a frozen causal LM (Table 2)", "lama",
          Side("ptuning", "P-tuning"), Side("mp", "MP"),
          tuple(PaperPair("Table 2 right", b, "P-tuning", "MP") for b in _GPT_LAMA)),
    Claim("lama-ptuning-ft", "P-tuning on a frozen LM beats fine-tuning the LM on LAMA (Table 2, GPT)", "lama",
          Side("ptuning", "P-tuning"), Side("ft", "FT"),
          tuple(PaperPair("Table 2 right", b, "P-tuning", "FT") for b in _GPT_LAMA),
          why_not="the cpu schedule gives fine-tuning the same 32 steps of 16 facts that suit a small prompt encoder"),
    Claim("lama-ptuning-mpft", "P-tuning on a frozen LM beats MP+FT on LAMA (Table 2, GPT)", "lama",
          Side("ptuning", "P-tuning"), Side("mp+ft", "MP+FT"),
          tuple(PaperPair("Table 2 right", b, "P-tuning", "MP+FT") for b in _GPT_LAMA),
          why_not="the cpu schedule gives fine-tuning the same 32 steps of 16 facts that suit a small prompt encoder"),
    Claim("fewshot-ptuning-pet", "Few-shot P-tuning beats PET's fine-tuning with manual patterns (Table 5)",
          "fewshot", Side("ptuning", "P-tuning"), Side("mp-ft", "PET-FT"),
          (PaperPair("Table 5", "albert-xxlarge-v2", "P-tuning", "PET", task="Avg"),),
          why_not="20 training steps of the cpu preset on a 135M causal LM, against the paper's 250+ on ALBERT-xxlarge"),
    Claim("fewshot-ptuning-mp", "Few-shot P-tuning improves on the zero-shot manual pattern (Table 5's premise)",
          "fewshot", Side("ptuning", "P-tuning"), Side("mp", "MP"),
          why_not="20 training steps of the cpu preset move a 135M causal LM little from its zero-shot answers"),
    Claim("fewshot-joint-frozen", "Few-shot P-tuning trains the LM with the prompts: better than a frozen LM",
          "fewshot", Side("ptuning", "P-tuning"), Side("ptuning-frozen", "P-tuning (frozen LM)")),
    Claim("supervised-ptuning-petft", "Supervised P-tuning matches or beats PET fine-tuning (Tables 3, 4; GPT)",
          "supervised", Side("ptuning", "P-tuning"), Side("mp-ft", "PET-FT"),
          (PaperPair("Table 3", "gpt2", "P-tuning", "PET-FT", task="Avg", metric="avg"),
           PaperPair("Table 4", "gpt2-medium", "P-tuning", "PET-FT", task="Avg", metric="avg"))),
    Claim("supervised-ptuning-mp", "Supervised P-tuning beats PET's zero-shot pattern (Table 3, GPT)", "supervised",
          Side("ptuning", "P-tuning"), Side("mp", "PET-zero-shot"),
          (PaperPair("Table 3", "gpt2", "P-tuning", "PET-zero-shot", task="Avg", metric="avg"),)),
    Claim("supervised-ptuning-clsft", "Supervised P-tuning beats a classification head (Tables 3, 4; GPT)",
          "supervised", Side("ptuning", "P-tuning"), Side("cls-ft", "CLS-FT"),
          (PaperPair("Table 3", "gpt2", "P-tuning", "CLS-FT", task="Avg", metric="avg"),
           PaperPair("Table 4", "gpt2-medium", "P-tuning", "CLS-FT", task="Avg", metric="avg"))),
    Claim("lama-lstm-none", "A prompt encoder (the paper's LSTM) beats training the prompt embeddings directly",
          "lama", Side("ptuning", "P-tuning, LSTM"), Side("ptuning", "P-tuning, no encoder", encoder="none")),
    Claim("lama-lstm-mlp", "The paper's LSTM encoder beats an MLP encoder (PEFT's default)", "lama",
          Side("ptuning", "P-tuning, LSTM"), Side("ptuning", "P-tuning, MLP", encoder="mlp"),
          why_not="within the cpu schedule's 32 steps the LSTM's prompts stall at zero on more relations than the "
                  "MLP's (REPRODUCING, \"Stalled encoders\"); the paper trains to convergence"),
)


# ------------------------------------------------------------------------------------------ our numbers
@dataclass(frozen=True)
class Scores:
    """One side's score per seed (a zero-shot side: one value standing for every seed)."""

    values: tuple[float, ...]
    zero_shot: bool

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> Optional[float]:
        if self.zero_shot:
            return 0.0
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def _benchmark(setting: str) -> str:
    return "lama" if setting == "lama" else "superglue"


def _matches(result: Result, setting: str, side: Side) -> bool:
    """`result` is a run of `side` in `setting`. A SuperGLUE result on a subset (partial) is left out; a LAMA
    summary's partial flag marks the reconstructed relation files, the same for every method."""
    if result.method != side.method or encoder_of(result) not in (None, side.encoder):
        return False
    if setting == "lama":
        return result.kind == "lama" and result.setting == "29k"
    return result.kind == "superglue" and result.setting == setting and not result.partial


def _task_name(result: Result) -> str:
    """The task's paper name (the key of the Avg rule)."""
    from repro.tasks.registry import get_task

    return get_task(result.task).display_name


def _units(result: Result) -> dict[str, dict[str, float]]:
    """unit -> seed -> score: LAMA relations (P@1), SuperGLUE tasks of the Avg (the mean of their metrics)."""
    if result.kind == "lama":
        return {rel.relation: dict(rel.seeds) or {"-": rel.p_at_1} for rel in result.relations
                if rel.p_at_1 is not None}
    names = avg_tasks().get(_task_name(result), ())
    if not names:
        return {}
    by_seed = {s: statistics.fmean(m[k] for k in names) for s, m in result.seed_metrics.items()
               if all(k in m for k in names)}
    return {_task_name(result): by_seed} if by_seed else {}


def side_units(results: Sequence[Result], setting: str, side: Side, backbone: str,
               preset: str) -> dict[str, dict[str, float]]:
    """Every unit the side ran on `backbone` under `preset`, with its score per seed (LAMA seeds may sit in
    several summaries)."""
    units: dict[str, dict[str, float]] = {}
    for r in results:
        if r.backbone == backbone and r.preset == preset and _matches(r, setting, side):
            for unit, by_seed in _units(r).items():
                units.setdefault(unit, {}).update(by_seed)
    return units


def side_scores(units: dict[str, dict[str, float]], common: set[str], zero_shot: bool) -> Optional[Scores]:
    """Per seed, the mean over the `common` units (a zero-shot side: its one value per unit)."""
    chosen = {u: units[u] for u in sorted(common) if units.get(u)}
    if not chosen:
        return None
    if zero_shot:
        return Scores((statistics.fmean(next(iter(v.values())) for v in chosen.values()),), True)
    seeds = sorted(set.intersection(*(set(v) for v in chosen.values())))
    if not seeds:
        return None
    return Scores(tuple(statistics.fmean(v[s] for v in chosen.values()) for s in seeds), False)


@dataclass(frozen=True)
class Row:
    claim: Claim
    backbone: str
    preset: str
    a: Optional[Scores]
    b: Optional[Scores]
    verdict: str
    note: str = ""


def judge(a: Optional[Scores], b: Optional[Scores]) -> str:
    """The verdict rule of the module doc (the paper's sign: A beats B)."""
    if a is None or b is None:
        return NOT_RUN
    if a.std is None or b.std is None:
        return ONE_SEED
    diff, spread = a.mean - b.mean, (a.std ** 2 + b.std ** 2) ** 0.5
    if abs(diff) <= spread:
        return SPREAD
    return REPRODUCED if diff > 0 else NOT_REPRODUCED


def claim_rows(results: Sequence[Result]) -> list[Row]:
    """Per claim, a row per (backbone, preset) where either side ran, both sides over the units (relations,
    tasks) both ran; a `not run` row where neither did."""
    rows: list[Row] = []
    for claim in CLAIMS:
        where = sorted({(r.backbone, r.preset) for r in results
                        for side in (claim.a, claim.b) if _matches(r, claim.setting, side)})
        if not where:
            rows.append(Row(claim, "—", "—", None, None, NOT_RUN))
            continue
        benchmark = _benchmark(claim.setting)
        for backbone, preset in where:
            units = [side_units(results, claim.setting, side, backbone, preset) for side in (claim.a, claim.b)]
            common = set(units[0]) & set(units[1])
            a, b = (side_scores(u, common or set(u), get_method(side.method, benchmark).zero_shot)
                    for u, side in zip(units, (claim.a, claim.b)))
            verdict = judge(a, b) if common else NOT_RUN
            notes = [claim.why_not] if verdict == NOT_REPRODUCED else []
            if common and claim.setting != "lama" and len(common) < len(avg_tasks()):
                notes.insert(0, f"over {len(common)} of the Avg's {len(avg_tasks())} tasks ({', '.join(sorted(common))})")
            if common and claim.setting == "lama":
                notes.insert(0, f"over the {len(common)} relations both ran")
            rows.append(Row(claim, backbone, preset, a, b, verdict, "; ".join(notes)))
    return rows


# ------------------------------------------------------------------------------------------ the paper's numbers
def _paper_value(paper: PaperTables, table: str, method: str, backbone: str, task: str, metric: str) -> Optional[float]:
    if table == "Table 5" and task == "Avg":  # Table 5 has no Avg column: the Avg rule over its task cells
        from repro.report.average import superglue_average

        values = {(t, m): getattr(paper.get(table, method, backbone, t, m), "value", None)
                  for t, metrics in avg_tasks().items() for m in metrics}
        return superglue_average(values).value
    cell = paper.get(table, method, backbone, task, metric)
    return cell.value if cell is not None else None


def paper_text(claim: Claim, paper: PaperTables) -> str:
    if not claim.paper:
        return "stated without a number"
    parts = []
    for pair in claim.paper:
        a = _paper_value(paper, pair.table, pair.method_a, pair.backbone, pair.task, pair.metric)
        b = _paper_value(paper, pair.table, pair.method_b, pair.backbone, pair.task, pair.metric)
        if a is not None and b is not None:
            parts.append(f"{pair.backbone} {a:.1f} vs {b:.1f}")
    return "; ".join(parts) or "—"


# ------------------------------------------------------------------------------------------ the section
def _scores_text(s: Optional[Scores]) -> str:
    if s is None:
        return "—"
    if s.std is None or s.zero_shot:
        return f"{s.mean:.1f}" + (" (zero-shot)" if s.zero_shot else " (1 seed)")
    return f"{s.mean:.1f} ± {s.std:.1f} ({len(s.values)} seeds)"


def claims_section(rows: Sequence[Row], paper: PaperTables) -> str:
    """The generated "Claims" section of REPRODUCING.md from `claim_rows` (see the module doc)."""
    lines = [
        "Each row: the paper's claim (A beats B), the paper's A vs B where it gives numbers, ours per backbone and "
        "preset (mean ± sample std over seeds), A - B, and the verdict: `reproduced` when A - B exceeds the seed "
        "spread sqrt(std_A² + std_B²) with the paper's sign, `not reproduced` when it exceeds it with the other "
        "sign, `inconclusive` within the spread or with one seed of a trained side, `not run` without results "
        "(rule: `repro/report/claims.py`). LAMA: macro P@1 over the 41 relations (29k); SuperGLUE: per seed the "
        "mean over the tasks both sides ran of each task's mean metric.",
        "",
        "| Claim | Paper (A vs B) | Backbone, preset | A | B | A - B | Verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    counts: dict[str, int] = {}
    for row in rows:
        claim = row.claim
        diff = f"{row.a.mean - row.b.mean:+.1f}" if row.a is not None and row.b is not None else "—"
        verdict = row.verdict + (f": {row.note}" if row.note else "")
        cells = [f"{claim.statement} [{claim.a.label} vs {claim.b.label}]", paper_text(claim, paper),
                 f"{row.backbone}, {row.preset}" if row.backbone != "—" else "—",
                 _scores_text(row.a), _scores_text(row.b), diff, verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    order = (REPRODUCED, NOT_REPRODUCED, SPREAD, ONE_SEED, NOT_RUN)
    lines += ["", "Verdicts: " + ", ".join(f"{counts[v]} {v}" for v in order if v in counts) + "."]
    return "\n".join(lines)
