"""How much a number moves when nothing but chance or the machine changes: the "Known spread" section of
REPRODUCING.md, generated from result files so that a reader can tell noise from a difference.

Two sources:
- **Seeds.** Every LAMA summary over several seeds (`--seeds N`) and every SuperGLUE result with several seeds:
  per-seed values, mean ± std, and for LAMA the per-relation spread (median and largest std, relations whose
  seeds lie more than `WIDE` points apart, relations that stall in some seeds only).
- **Variants.** `<results>/spread/<variant>/` holds reruns of committed runs with one thing changed (the thread
  count, the CPU); each result there is compared with the file at the same place under `<results>/`: what
  differs (the relation files' fingerprint fields, the CPU model), the macro or mean metrics of both, and how
  many relations moved and by how much. The report's tables leave `spread/` out (`build_report`).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from repro.experiment.fingerprints import differences
from repro.report.facts import raw
from repro.report.results import Result, discover_results, parse_result_file

SPREAD_DIR = "spread"
WIDE = 10.0  # points of P@1 between a relation's best and worst seed that count as a wide spread
STALLED = 1.0  # a relation below this P@1 in a seed has stalled (its encoder never left the starting loss)


def spread_section(results: Sequence[Result], results_dir: Path) -> str:
    """Markdown: the seed spread of every several-seed result, then every variant against its original."""
    parts = [_lama_seeds(results), _superglue_seeds(results), _variants(Path(results_dir))]
    return "\n\n".join(p for p in parts if p) or "No result with several seeds and no variant run under spread/."


def _lama_seeds(results: Sequence[Result]) -> str:
    rows = []
    for r in sorted(results, key=lambda r: r.display):
        if r.kind != "lama" or r.n_seeds < 2:
            continue
        macros = " / ".join(f"{v['macro_p_at_1']:.1f}" for v in r.seed_metrics.values())
        per_relation = [(rel.relation, statistics.stdev(rel.seeds.values()), max(rel.seeds.values()) - min(rel.seeds.values()))
                        for rel in r.relations if len(rel.seeds) > 1]
        stds = sorted(std for _, std, _ in per_relation)
        top = max(per_relation, key=lambda x: x[1])
        wide = sum(1 for _, _, span in per_relation if span > WIDE)
        stalls = sorted(rel.relation for rel in r.relations if len(rel.seeds) > 1
                        and min(rel.seeds.values()) < STALLED <= max(rel.seeds.values()))
        always = sorted(rel.relation for rel in r.relations if rel.seeds and max(rel.seeds.values()) < STALLED)
        rows.append(f"| {r.display} | {', '.join(r.seed_metrics)} | {macros} | "
                    f"{r.metrics['macro_p_at_1']:.1f} ± {r.std.get('macro_p_at_1', 0.0):.1f} | "
                    f"{statistics.median(stds):.1f} | {top[1]:.1f} ({top[0]}) | {wide} of {len(per_relation)} | "
                    f"{', '.join(stalls) or 'none'} | {', '.join(always) or 'none'} |")
    if not rows:
        return ""
    return "\n".join([
        f"| LAMA run | seeds | macro P@1 per seed | mean ± std | per-relation std: median | largest | "
        f"relations with seeds > {WIDE:.0f} points apart | stalled (P@1 < {STALLED:.0f}) in some seeds only | "
        "stalled in every seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows])


def _superglue_seeds(results: Sequence[Result]) -> str:
    rows = []
    for r in sorted(results, key=lambda r: r.display):
        if r.kind != "superglue" or len(r.seed_metrics) < 2:
            continue
        for metric, mean in r.metrics.items():
            values = [v[metric] for v in r.seed_metrics.values() if metric in v]
            rows.append(f"| {r.display} | {metric} | {' / '.join(f'{v:.1f}' for v in values)} | "
                        f"{mean:.1f} ± {r.std.get(metric, 0.0):.1f} | {max(values) - min(values):.1f} |")
    if not rows:
        return ""
    return "\n".join(["| SuperGLUE result | metric | per seed | mean ± std | range |",
                      "| --- | --- | --- | --- | --- |", *rows])


def _variants(results_dir: Path) -> str:
    spread = results_dir / SPREAD_DIR
    if not spread.is_dir():
        return ""
    rows = []
    for variant in discover_results(spread).results:
        relative = Path(variant.path).resolve().relative_to(spread.resolve())
        original_path = results_dir / Path(*relative.parts[1:])
        original = parse_result_file(original_path, str(original_path)) if original_path.is_file() else None
        if original is None:
            rows.append(f"| {relative.parts[0]} | {variant.display} | no original at {original_path} | | | |")
            continue
        rows.append(_variant_row(relative.parts[0], variant, original))
    if not rows:
        return ""
    return "\n".join([
        "| variant | result | what differs from the committed run | committed | variant | moved |",
        "| --- | --- | --- | --- | --- | --- |", *rows])


def _variant_row(name: str, variant: Result, original: Result) -> str:
    """A LAMA variant is compared with the original's run of the same seed (a several-seed original holds each
    seed's numbers), a SuperGLUE one on its mean metrics."""
    what = _what_differs(variant, original)
    key = "macro_p_at_1" if variant.kind == "lama" else next(iter(variant.metrics))
    seed = _first_seed(variant) if variant.kind == "lama" else ""
    ours = original.seed_metrics.get(seed, original.metrics).get(key)
    theirs = variant.metrics.get(key)
    moved = _relations_moved(variant, original, seed) if variant.kind == "lama" else \
        f"{key} {theirs - ours:+.2f}" if ours is not None and theirs is not None else ""
    which = f" (seed {seed})" if len(original.seed_metrics) > 1 else ""
    return (f"| {name} | {variant.display} | {what} | {key} {_num(ours)}{which} | {key} {_num(theirs)} | {moved} |")


def _first_seed(result: Result) -> str:
    seeds = result.config.get("seeds") or [result.config.get("seed")]
    return str(seeds[0])


def _what_differs(variant: Result, original: Result) -> str:
    """The fingerprint fields that differ (from one relation file of each LAMA run, or the SuperGLUE files),
    and the CPU model and bf16 kernel where they differ."""
    fields = [_unit_fields(r) for r in (original, variant)]
    said = []
    if not (fields[0] and fields[1]):
        said.append("fingerprint fields not recorded")
    elif fields[0] != fields[1]:
        said.append(differences(fields[0], fields[1]))
    for name, get in (("CPU", lambda env: env.get("cpu_model")),
                      ("bf16 kernel", lambda env: (env.get("bf16_path") or {}).get("bf16_matmul_kernel"))):
        before, after = (get(r.environment) for r in (original, variant))
        if before != after:
            said.append(f"{name} {before or 'not recorded'} -> {after or 'not recorded'}")
    return "; ".join(said) or "nothing recorded differs"


def _unit_fields(result: Result) -> Optional[dict[str, Any]]:
    data = raw(result.path)
    if result.kind != "lama":
        return data.get("fingerprint_fields")
    for rel in result.relations:
        fields = raw(Path(result.path).parent / f"{rel.relation}.json").get("fingerprint_fields")
        if fields:
            return fields
    return None


def _relations_moved(variant: Result, original: Result, seed: str) -> str:
    """`27 of 41 relations, mean |Δ| 0.12, largest 0.50 (P31)`: the variant against the original's `seed`."""
    theirs = {r.relation: r.p_at_1 for r in variant.relations if r.p_at_1 is not None}
    deltas = [(rel.relation, theirs[rel.relation] - rel.seeds.get(seed, rel.p_at_1)) for rel in original.relations
              if rel.p_at_1 is not None and rel.relation in theirs]
    moved = [(rid, d) for rid, d in deltas if abs(d) > 1e-9]
    if not moved:
        return f"0 of {len(deltas)} relations"
    rid, largest = max(moved, key=lambda x: abs(x[1]))
    mean = statistics.mean(abs(d) for _, d in moved)
    return f"{len(moved)} of {len(deltas)} relations, mean \\|Δ\\| {mean:.2f}, largest {largest:+.2f} ({rid})"


def _num(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}"
