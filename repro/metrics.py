"""Metrics exactly as the paper's tables use them. Pure functions; every value is a percentage (0-100).

Argument order: predictions first, then gold (scikit-learn's order is the reverse; it is swapped inside).
Where the paper followed PET's code (CB macro-F1, MultiRC EM/F1a, mean +- std over seeds), so does this
module; the sources are named per function.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter, defaultdict
from typing import Hashable, Mapping, Sequence

import numpy as np
from sklearn.metrics import f1_score, matthews_corrcoef

def _pair(preds: Sequence, golds: Sequence) -> tuple[np.ndarray, np.ndarray]:
    preds, golds = np.asarray(list(preds)), np.asarray(list(golds))
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions but {len(golds)} gold labels")
    if len(preds) == 0:
        raise ValueError("no examples to score")
    return preds, golds


# ----------------------------------------------------------------------------------------------- LAMA
def p_at_1(predicted_ids: Sequence[int], gold_ids: Sequence[int]) -> float:
    """Precision@1: share of facts whose top prediction (within the allowed vocabulary) is the object."""
    preds, golds = _pair(predicted_ids, gold_ids)
    return float(np.mean(preds == golds) * 100.0)


def lama_summary(per_relation: Mapping[str, tuple[int, int]]) -> dict:
    """Macro P@1 (mean over relations of their P@1) and micro P@1 (over all facts), in percent.

    `per_relation`: relation id -> (correct, total kept facts). Relations with no kept fact have no P@1:
    they are left out of both averages and listed under `excluded`.
    """
    counted = {r: (c, t) for r, (c, t) in per_relation.items() if t > 0}
    bad = [r for r, (c, t) in per_relation.items() if c < 0 or t < 0 or c > t]
    if bad:
        raise ValueError(f"relation(s) {', '.join(bad)}: need 0 <= correct <= total")
    if not counted:
        raise ValueError("no relation has a kept fact: P@1 is undefined")
    correct = sum(c for c, _ in counted.values())
    total = sum(t for _, t in counted.values())
    return {
        "macro_p_at_1": float(np.mean([c / t for c, t in counted.values()]) * 100.0),
        "micro_p_at_1": correct / total * 100.0,
        "num_relations": len(counted),
        "num_facts": total,
        "excluded": sorted(r for r, (_, t) in per_relation.items() if t == 0),
    }


# -------------------------------------------------------------------------------------------- SuperGLUE
def accuracy(preds: Sequence, golds: Sequence) -> float:
    preds, golds = _pair(preds, golds)
    return float(np.mean(preds == golds) * 100.0)


def f1_macro(preds: Sequence, golds: Sequence) -> float:
    """CB's macro-F1 as PET computed it: sklearn `f1_score(average="macro")` over the labels in gold or pred."""
    preds, golds = _pair(preds, golds)
    return float(f1_score(golds, preds, average="macro") * 100.0)


def multirc_em_f1a(question_ids: Sequence[Hashable], preds: Sequence, golds: Sequence) -> dict[str, float]:
    """MultiRC: EM = share of questions whose answer options are all labelled right; F1a = binary F1 (class 1)
    over all answer options (PET's `exact_match` and `f1_score`).

    `question_ids` must identify a question across passages (MultiRC's question `idx` restarts per passage:
    use e.g. `(passage_idx, question_idx)`).
    """
    preds, golds = _pair(preds, golds)
    if len(question_ids) != len(preds):
        raise ValueError(f"{len(question_ids)} question ids for {len(preds)} answer options")
    preds, golds = preds.astype(int), golds.astype(int)
    all_right: dict[Hashable, bool] = defaultdict(lambda: True)
    for qid, p, g in zip(question_ids, preds, golds):
        all_right[qid] = all_right[qid] and p == g
    return {
        "em": sum(all_right.values()) / len(all_right) * 100.0,
        "f1a": float(f1_score(golds, preds, pos_label=1, average="binary", zero_division=0) * 100.0),
    }


def multirc_f1m(question_ids: Sequence[Hashable], preds: Sequence, golds: Sequence) -> float:
    """MultiRC per-question macro-F1 (the SuperGLUE scorer's `f1_m`): sklearn's macro-F1 over each question's
    answer options (labels present in its gold or predictions), averaged over questions, in percent."""
    preds, golds = _pair(preds, golds)
    if len(question_ids) != len(preds):
        raise ValueError(f"{len(question_ids)} question ids for {len(preds)} answer options")
    options: dict[Hashable, list[int]] = defaultdict(list)
    for i, qid in enumerate(question_ids):
        options[qid].append(i)
    per_question = [f1_score(golds[rows].astype(int), preds[rows].astype(int), average="macro", zero_division=0)
                    for rows in options.values()]
    return float(np.mean(per_question) * 100.0)


def matthews(preds: Sequence, golds: Sequence) -> float:
    """AX-b: Matthews correlation coefficient, times 100 (as the SuperGLUE leaderboard reports it)."""
    preds, golds = _pair(preds, golds)
    return float(matthews_corrcoef(golds, preds) * 100.0)


def gender_parity(pair_keys: Sequence[Hashable], preds: Sequence) -> float:
    """AX-g gender parity: share of male/female pairs whose two predictions agree.

    Pairs are consecutive examples in file order (idx 2k and 2k+1), the rule of the official scorer (jiant's
    `GenderParity`). AX-g's `pair_id` field is unique per example (551646, 551648, ...), so it cannot group
    them; pass the hypotheses as `pair_keys`: both halves of a pair share it, and a mismatch is an error.
    """
    if len(pair_keys) != len(preds):
        raise ValueError(f"{len(pair_keys)} pair keys for {len(preds)} predictions")
    if len(preds) == 0 or len(preds) % 2:
        raise ValueError(f"gender parity needs a positive, even number of examples, got {len(preds)}")
    same = 0
    for i in range(0, len(preds), 2):
        if pair_keys[i] != pair_keys[i + 1]:
            raise ValueError(f"examples {i} and {i + 1} are not a pair: keys {pair_keys[i]!r} != {pair_keys[i + 1]!r}")
        same += preds[i] == preds[i + 1]
    return same / (len(preds) // 2) * 100.0


# ---------------------------------------------------------------------------------------------- ReCoRD
def normalize_answer(text: str) -> str:
    """The official ReCoRD/SQuAD normalisation: lower-case, drop punctuation, articles, extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def record_em_f1(pred_text: str, gold_texts: Sequence[str]) -> tuple[float, float]:
    """One ReCoRD query: (EM, token F1) in percent, each the maximum over the gold answers."""
    if not gold_texts:
        raise ValueError("a ReCoRD query needs at least one gold answer")
    em = max(float(normalize_answer(pred_text) == normalize_answer(g)) for g in gold_texts)
    f1 = max(_token_f1(pred_text, g) for g in gold_texts)
    return em * 100.0, f1 * 100.0


def record_scores(items: Sequence[tuple[str, Sequence[str]]]) -> dict[str, float]:
    """Mean EM and F1 (percent) over `(prediction, gold answers)` pairs."""
    if not items:
        raise ValueError("no examples to score")
    scores = [record_em_f1(pred, golds) for pred, golds in items]
    return {"em": float(np.mean([s[0] for s in scores])), "f1": float(np.mean([s[1] for s in scores]))}


# --------------------------------------------------------------------------------------------- summary
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) over seeds, as the P-tuning/PET code reports
    (`statistics.stdev`, 0 for a single run)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
