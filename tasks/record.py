"""ReCoRD: fill the `@placeholder` of a query with an entity of the passage. Every distinct entity of the
passage is a candidate, scored as a multi-token answer at the target; the best-scoring entity is the
prediction. Metrics: exact match and token F1, each the maximum over the gold answers, with the official
normalisation (`repro.metrics.record_em_f1`).

Following PET (`RecordProcessor`, `RecordPVP`, `RecordTaskHelper`):
- candidates are the distinct entity strings `text[start:end+1]` (ReCoRD's `end` is inclusive), kept in order
  of first mention (PET used `list(set(...))`, whose order varies between Python runs);
- `@highlight\\n` in the passage becomes `- ` (as GPT-3 and PET did);
- training: one example per distinct gold answer, whose candidates are that answer and up to 9 other
  entities that are not gold answers (PET's `max_train_candidates_per_question = 10`), drawn with a
  per-query seeded generator so the draw does not depend on file order;
- pattern `pet` (PET's only one; the paper released no P-tuning pattern for ReCoRD): `passage query` with the
  query's `@placeholder` replaced by the target. The target always follows a space (PET's byte-level BPE
  encoding also gave every part a leading space); a placeholder glued to the previous character, e.g.
  `(@placeholder`, is rare (none in FewGLUE) and gets one. `ptuning` `ours` is *our* choice: one prompt token
  between the passage and the query. A causal LM reads the candidate as the continuation of passage + query
  up to the placeholder; the rest of the query is invisible to it, so the `-prefix` variants (the default for
  causal backbones) end at the target.
The paper has no ReCoRD result for P-tuning (the report marks the cell absent). The full ReCoRD dev set is
not in the data mirror (PARTIAL.tsv); `eval_fallback` names what the few-shot setting evaluates on instead.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Sequence

from repro import metrics
from repro.errors import DataError
from repro.tasks.base import Example, Task

PLACEHOLDER = "@placeholder"
MAX_TRAIN_CANDIDATES = 10


def passage_entities(passage: dict[str, Any]) -> tuple[str, ...]:
    """The distinct entity strings of a passage, in order of first mention."""
    text = passage["text"]
    seen: dict[str, None] = {}
    for span in passage["entities"]:
        start, end = int(span["start"]), int(span["end"])
        if not 0 <= start <= end < len(text):
            raise DataError(f"entity span {start}..{end} is outside the passage ({len(text)} characters)")
        seen.setdefault(text[start : end + 1], None)
    return tuple(seen)


class Record(Task):
    name = "record"
    folder = "ReCoRD"
    paper_name = "ReCoRD"
    metrics = ("em", "f1")
    in_paper_tables = False  # the paper's tables leave ReCoRD out
    in_avg = False
    large_train_set = True
    dev32_sha256 = "c420c9c49ee310d8648e64893c72b8f69b94085d3207c303787c24409c438663"
    kind = "candidates"
    required_fields = ("passage", "qas")
    # The `-prefix` variants end at the target: what a causal LM sees of the others (`default_variant` picks
    # them for causal backbones, which see nothing after [MASK]).
    manual_patterns = {
        "pet": "{passage:shorten} {query_before} [MASK]{query_after}",
        "pet-prefix": "{passage:shorten} {query_before} [MASK]",
    }
    ptuning_patterns = {
        "ours": "{passage:shorten} [P] {query_before} [MASK]{query_after}",
        "ours-prefix": "{passage:shorten} [P] {query_before} [MASK]",
    }
    # The SuperGLUE dev set is absent from the data mirror: few-shot evaluation falls back to FewGLUE's dev32
    # (also the model-selection set), and the results say so.
    eval_fallback = "fewglue/ReCoRD/dev32.jsonl"
    notes = (
        "candidates: the passage's distinct entities; prediction: the best-scoring entity; EM and token F1, each "
        "the maximum over the gold answers, official normalisation",
        "P-tuning pattern: ours (the paper released none): one prompt token between passage and query",
        "training: one item per gold answer with up to 9 other entities (PET)",
    )

    def example(self, row: dict[str, Any], uid: str) -> list[Example]:
        passage = row["passage"]
        if not isinstance(passage, dict) or "text" not in passage or "entities" not in passage:
            raise DataError("field 'passage' needs 'text' and 'entities'")
        entities = passage_entities(passage)
        if not entities:
            raise DataError("the passage has no entity (no candidate)")
        text = passage["text"].replace("@highlight\n", "- ")
        examples = []
        for qa in row["qas"]:
            query = qa["query"]
            if query.count(PLACEHOLDER) != 1:
                found = query.count(PLACEHOLDER)
                raise DataError(f"query {qa.get('idx')} needs exactly one {PLACEHOLDER}, found {found}")
            before, after = query.split(PLACEHOLDER)
            answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
            gold = next((i for i, e in enumerate(entities) if e in answers), None)
            examples.append(Example(
                uid=f"{uid}#q{qa['idx']}",
                values={"passage": text, "query_before": before.rstrip(), "query_after": after},
                label=gold,
                candidates=entities,
                group=str(qa["idx"]),
                meta={"answers": answers},
            ))
        return examples

    def train_examples(self, examples: Sequence[Example]) -> list[Example]:
        """One example per gold answer found among the entities: [answer] + up to 9 non-answer entities."""
        out = []
        for ex in examples:
            answers = ex.meta["answers"]
            others = [e for e in ex.candidates if e not in answers]
            for k, answer in enumerate(a for a in answers if a in ex.candidates):
                negatives = list(others)
                if len(negatives) > MAX_TRAIN_CANDIDATES - 1:
                    random.Random(f"{ex.group}:{k}").shuffle(negatives)
                    negatives = negatives[: MAX_TRAIN_CANDIDATES - 1]
                out.append(replace(ex, uid=f"{ex.uid}#a{k}", candidates=(answer, *negatives), label=0))
        return out

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """`predictions`: the index of the predicted entity per query; EM and F1 take the maximum over the
        query's gold answers (an index past the candidates is an error, not a miss)."""
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} queries")
        pairs = [(ex.candidates[int(p)], ex.meta["answers"]) for p, ex in zip(predictions, examples)]
        return metrics.record_scores(pairs)
