"""REPRODUCING.md states no number that the committed result files contradict: counts about results live in
the generated "facts" section (checked equal to what the result files give), and the numbers the prose still
quotes are checked against the files they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

from repro.report.facts import facts_section, lama_counts
from repro.report.build import report_results
from repro.report.reproducing import find_sections

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _text() -> str:
    return (ROOT / "REPRODUCING.md").read_text(encoding="utf-8")


def _prose() -> str:
    """REPRODUCING.md without its generated sections."""
    lines = _text().splitlines()
    for start, stop in sorted(find_sections(_text()).values(), reverse=True):
        del lines[start:stop + 1]
    return "\n".join(lines)


def _json(rel: str) -> dict:
    return json.loads((RESULTS / rel).read_text())


def test_the_generated_counts_are_those_of_the_result_files():
    found = report_results(RESULTS)
    start, stop = find_sections(_text())["facts"]
    body = "\n".join(_text().splitlines()[start + 1:stop]).strip()
    assert body == facts_section(found.results).strip()


def test_the_prose_states_no_fact_count_of_its_own():
    prose = _prose()
    assert not re.search(r"[\d,]+ of the [\d,]+ test facts", prose)
    assert not re.search(r"facts are kept \(\d+%\)", prose)


def test_lama_numbers_quoted_in_prose_match_the_summaries():
    mp = _json("lama/smollm2-135m/mp-29k/summary.json")
    pt = _json("lama/smollm2-135m/ptuning-29k/summary.json")
    prose = _prose()
    row = re.search(r"macro over relations \(MP: (\d+), P-tuning: (\d+)\) \| ([\d.]+) \| ([\d.]+)", prose)
    assert row and (int(row[1]), int(row[2])) == (mp["n_relations"], pt["n_relations"])
    assert (float(row[3]), float(row[4])) == (round(mp["macro_p_at_1"], 1), round(pt["macro_p_at_1"], 1))
    micro = re.search(r"micro over facts \| ([\d.]+) \| ([\d.]+)", prose)
    assert (float(micro[1]), float(micro[2])) == (round(mp["micro_p_at_1"], 1), round(pt["micro_p_at_1"], 1))
    same = re.search(r"macro over the same (\d+) relations \| ([\d.]+) \| ([\d.]+)", prose)
    shared = [rid for rid, r in pt["relations"].items() if r.get("p_at_1") is not None]
    assert int(same[1]) == len(shared) == pt["n_relations"]
    mp_same = sum(mp["relations"][rid]["p_at_1"] for rid in shared) / len(shared)
    assert float(same[2]) == round(mp_same, 1)
    counts = lama_counts(mp)
    assert counts["kept"] + counts["dropped"] == int(re.search(r"\(([\d,]+) of LAMA's", prose)[1].replace(",", ""))



def test_encoder_ablation_table_matches_the_summaries():
    """The prose table of the LAMA encoder ablation: every seed's macro P@1 and the mean ± std, per encoder."""
    prose = _prose()
    folders = {"LSTM": "ptuning-lstm-29k", "MLP": "ptuning-29k", "none": "ptuning-none-29k"}
    for label, folder in folders.items():
        summary = _json(f"lama/smollm2-135m/{folder}/summary.json")
        row = re.search(rf"\| {label} [^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) ± ([\d.]+) \|", prose)
        assert row, f"the encoder ablation's {label} row"
        assert [float(v) for v in row.groups()[:3]] == [round(summary["seeds"][s]["macro_p_at_1"], 1)
                                                        for s in ("34", "35", "36")], label
        assert (float(row[4]), float(row[5])) == (round(summary["macro_p_at_1"], 1),
                                                  round(summary["std"]["macro_p_at_1"], 1)), label

def test_per_seed_numbers_quoted_in_prose_match_the_result_files():
    multirc = _json("superglue/fewshot/smollm2-135m/ptuning/multirc.json")
    quote = re.search(r"seed (\d+) falls to F1a ([\d.]+) \(dev32 selection score ([\d.]+)", _prose())
    assert quote, "the MultiRC seed sentence"
    seed = quote[1]
    assert float(quote[2]) == round(multirc["seeds"][seed]["f1a"], 1)
    assert float(quote[3]) == round(multirc["training"][seed]["best_dev"], 1)
    others = sorted(round(m["f1a"]) for s, m in multirc["seeds"].items() if s != seed)
    span = re.search(r"seeds \d+ and \d+\s+reach (\d+)-(\d+)", _prose())
    assert (int(span[1]), int(span[2])) == (others[0], others[-1])


def test_lama_seed_numbers_quoted_in_prose_match_the_summary():
    pt = _json("lama/smollm2-135m/ptuning-29k/summary.json")
    prose = _prose()
    quote = re.search(r"seeds (\d+), (\d+) and (\d+) give macro P@1 (\d+\.\d), (\d+\.\d) and (\d+\.\d)", prose)
    assert quote, "the per-seed macro sentence"
    seeds = [quote[1], quote[2], quote[3]]
    assert seeds == list(pt["seeds"])
    assert [float(q) for q in quote.groups()[3:]] == [round(pt["seeds"][s]["macro_p_at_1"], 1) for s in seeds]
    row = re.search(r"macro over relations \(MP: \d+, P-tuning: \d+\) \| [\d.]+ \| [\d.]+ ± ([\d.]+)", prose)
    assert float(row[1]) == round(pt["std"]["macro_p_at_1"], 1)
    quoted = re.findall(r"(P\d+): ([\d.]+, [\d.]+, [\d.]+)[;)]", prose)
    assert len(quoted) >= 4, "the per-relation examples of the seed spread"
    for rid, values in quoted:
        per_seed = pt["relations"][rid]["seeds"]
        assert [float(v) for v in values.split(", ")] == [round(per_seed[s], 1) for s in seeds], rid
