"""The generated "Claims" section: its verdict rule, the units both sides are compared on, and REPRODUCING.md kept
equal to what the committed result files give."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.report import claims
from repro.report.claims import Scores, judge
from repro.report.reproducing import find_sections
from repro.report.paper import load_paper_tables
from repro.report.build import report_results
from repro.report.results import RelationResult, Result

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_section_is_what_the_result_files_give():
    """A result file that changes a verdict (or any number) fails here until `python -m repro report` is rerun."""
    text = (ROOT / "REPRODUCING.md").read_text(encoding="utf-8")
    start, stop = find_sections(text)["claims"]
    body = "\n".join(text.splitlines()[start + 1:stop]).strip()
    found = report_results(ROOT / "results")
    assert body == claims.claims_section(claims.claim_rows(found.results), load_paper_tables()).strip()


@pytest.mark.parametrize("a, b, verdict", [
    (Scores((30.0, 31.0, 32.0), False), Scores((15.0,), True), claims.REPRODUCED),  # +16, spread 1
    (Scores((10.0, 11.0, 12.0), False), Scores((15.0,), True), claims.NOT_REPRODUCED),  # -4, spread 1
    (Scores((14.0, 15.0, 17.0), False), Scores((15.0,), True), claims.SPREAD),  # +0.3, spread 1.5
    (Scores((20.0, 21.0), False), Scores((19.0, 20.0), False), claims.SPREAD),  # +1, spread 1
    (Scores((30.0,), False), Scores((15.0,), True), claims.ONE_SEED),  # a trained side with one seed
    (None, Scores((15.0,), True), claims.NOT_RUN),
])
def test_verdict_rule(a, b, verdict):
    assert judge(a, b) == verdict


def _lama(method: str, relations: dict[str, dict[str, float]], encoder: str = "lstm") -> Result:
    rels = tuple(RelationResult(r, sum(s.values()) / len(s), seeds=s) for r, s in relations.items())
    seeds = sorted({s for by_seed in relations.values() for s in by_seed})
    return Result(path=Path(f"{method}-{encoder}.json"), display=method, kind="lama", backbone="tiny",
                  backbone_name="tiny", backbone_kind="causal", method=method, setting="29k", task="lama",
                  metrics={}, preset="cpu", relations=rels, config={"encoder": encoder},
                  seed_metrics={s: {} for s in seeds})


def test_lama_sides_are_compared_over_the_relations_both_ran_and_each_encoder_apart():
    """MP has a relation P-tuning lacks (no training data): it is left out of both means. An MLP run is not the
    LSTM side of the P-tuning vs MP claim, only the B side of LSTM vs MLP."""
    mp = _lama("mp", {"P1": {"34": 10.0}, "P2": {"34": 20.0}, "P3": {"34": 90.0}})
    lstm = _lama("ptuning", {"P1": {"34": 30.0, "35": 32.0, "36": 34.0}, "P2": {"34": 40.0, "35": 40.0, "36": 42.0}})
    mlp = _lama("ptuning", {"P1": {"34": 31.0, "35": 29.0, "36": 33.0}, "P2": {"34": 41.0, "35": 39.0, "36": 40.0}},
                encoder="mlp")
    rows = {row.claim.key: row for row in claims.claim_rows([mp, lstm, mlp])}
    row = rows["lama-ptuning-mp"]
    assert row.b.values == (15.0,) and row.a.values == (35.0, 36.0, 38.0)  # P3 out of MP's mean
    assert row.verdict == claims.REPRODUCED and "2 relations" in row.note
    row = rows["lama-lstm-mlp"]
    assert row.a.values == (35.0, 36.0, 38.0) and row.b.values == (36.0, 34.0, 36.5)
    assert row.verdict == claims.SPREAD
    assert rows["lama-ptuning-ft"].verdict == claims.NOT_RUN and rows["lama-lstm-none"].verdict == claims.NOT_RUN


def test_paper_numbers_of_a_claim():
    paper = load_paper_tables()
    by_key = {c.key: c for c in claims.CLAIMS}
    assert claims.paper_text(by_key["lama-ptuning-mp"], paper) == "gpt2-medium 46.5 vs 20.3; gpt2-xl 54.4 vs 22.8"
    # Table 5 has no Avg column: the Avg rule over its seven tasks (CB and MultiRC: the mean of their two metrics)
    ptuning = (77.8 + (92.9 + 92.3) / 2 + 56.3 + 76.5 + (36.1 + 75.0) / 2 + 84.6 + 87.0) / 7
    pet = (79.4 + (85.1 + 59.4) / 2 + 52.4 + 69.8 + (37.9 + 77.3) / 2 + 80.1 + 95.0) / 7
    assert claims.paper_text(by_key["fewshot-ptuning-pet"], paper) == f"albert-xxlarge-v2 {ptuning:.1f} vs {pet:.1f}"
