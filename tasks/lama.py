"""LAMA (T-REx) knowledge probing data: relations, facts, the paper's vocabulary strategies.

Knows the P-tuning LAMA layout under the data root, nothing of models:
`lama/relations.jsonl` (manual template per relation; 46 entries, of which the 41 with a folder under
`lama/fact-retrieval/original/` are the T-REx relations the paper probes), `fact-retrieval/original/Pxx/
{train,dev,test}.jsonl`, `29k-vocab.json`, `34k-vocab.json`. Files that the data root's PARTIAL.tsv lists
(13 rebuilt test files; train missing for P190, P47, P530; dev missing for P47) are marked on the
`Relation`, and loading a missing one fails with a DataError that says it is missing in the mirror.

Vocabulary strategies (`allowed_vocab`):
- `29k`, `34k`: the lists of `29k-vocab.json` / `34k-vocab.json`, keyed per model family (`bert-base-cased`,
  `bert-large-cased`, `roberta-large`, `gpt2-xl`). The byte-level keys store tokens with the 'Ġ' space
  marker; the BERT keys store bare words. As found in the files: the 29k lists are one word set of
  18,154 words under all four keys; in 34k the BERT keys hold 21,035 words and the GPT-2/RoBERTa keys the
  same 18,154 as 29k. With `tokenizer_key` one of the keys, that list is used as is (the authors' code).
  For any other tokenizer the strategy's words are the union of the file's lists with 'Ġ' stripped
  (which equals the `bert-base-cased` list in both files) filtered to the words that are exactly one
  token of this tokenizer where the object sits (after a space when `space_before`, i.e. 'Ġ' + word for
  byte-level BPE).
- `full`: every vocabulary entry that is a whole word in that position: decoded, stripped and re-encoded
  it gives back exactly that one token (so '##' pieces and BPE pieces without the space marker are out).
  The authors' `original` strategy scored over all entries, pieces included; fact filtering is the same.
A fact is kept when its `obj_label` is an allowed word (`filter_facts`); P@1 is then taken within the
allowed ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from repro import metrics
from repro.data import PathLike, read_partial, require
from repro.errors import ConfigError, DataError
from repro.splits import load_jsonl, rows
from repro.tasks.base import Example, Task

LAMA_DIR = "lama"
FACTS_DIR = "lama/fact-retrieval/original"
RELATIONS_FILE = "lama/relations.jsonl"
SPLITS = ("train", "dev", "test")
VOCAB_FILES = {"29k": "lama/29k-vocab.json", "34k": "lama/34k-vocab.json"}
VOCAB_STRATEGIES = ("29k", "34k", "full")
BYTE_LEVEL_SPACE = "Ġ"
FACT_FIELDS = ("sub_label", "obj_label")
FACT_COLUMNS = FACT_FIELDS + ("uuid",)  # what a Fact keeps of a row


# ------------------------------------------------------------------------------------------- relations
@dataclass(frozen=True)
class Relation:
    """One T-REx relation: its manual prompt and which of its files are partial in this data root."""

    id: str
    label: str
    template: str  # LAMA form: "[X] is located in [Y] ."
    type: str = ""
    description: str = ""
    partial: Mapping[str, str] = field(default_factory=dict)  # split -> "reconstructed: ..." / "missing: ..."

    @property
    def prompt(self) -> str:
        """The manual prompt in the suite's template syntax: `{sub}` for [X], `[MASK]` for [Y]."""
        return self.template.replace("[X]", "{sub}").replace("[Y]", "[MASK]")

    def split_status(self, split: str) -> Optional[str]:
        return self.partial.get(_check_split(split))

    @property
    def missing_splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if self.partial.get(s, "").startswith("missing"))

    @property
    def test_partial(self) -> Optional[str]:
        """PARTIAL.tsv's mark on the test file (e.g. rebuilt), which every result on it must carry."""
        return self.partial.get("test")

    @property
    def trainable(self) -> bool:
        return "train" not in self.missing_splits and "dev" not in self.missing_splits


def relation_file(relation: Union[str, Relation], split: str) -> str:
    rel_id = relation.id if isinstance(relation, Relation) else relation
    return f"{FACTS_DIR}/{rel_id}/{_check_split(split)}.jsonl"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown LAMA split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def load_relations(root: PathLike) -> list[Relation]:
    """The relations of relations.jsonl (in its order) that have a fact folder: the 41 T-REx relations."""
    root = Path(root)
    path = require(root, RELATIONS_FILE)
    folders = {p.name for p in (root / FACTS_DIR).iterdir() if p.is_dir()} if (root / FACTS_DIR).is_dir() else set()
    if not folders:
        require(root, relation_file("P17", "test"))  # raises with the fetch hint
    partial = read_partial(root)
    relations: list[Relation] = []
    seen: set[str] = set()
    for lineno, row in rows(load_jsonl(path, required=("relation", "template"))):
        rel_id = row["relation"]
        if rel_id not in folders or rel_id in seen:
            continue
        if "[X]" not in row["template"] or "[Y]" not in row["template"]:
            raise DataError(f"{path}:{lineno}: field 'template' lacks [X] or [Y]: {row['template']!r}")
        seen.add(rel_id)
        marks = {s: f"{partial[relation_file(rel_id, s)][0]}: {partial[relation_file(rel_id, s)][1]}"
                 for s in SPLITS if relation_file(rel_id, s) in partial}
        relations.append(Relation(rel_id, row.get("label", ""), row["template"], row.get("type", ""),
                                  row.get("description", ""), marks))
    unknown = sorted(folders - seen)
    if unknown:
        raise DataError(f"{path}: no template for relation folder(s) {', '.join(unknown)} under {root / FACTS_DIR}")
    return relations


def get_relations(root: PathLike, ids: Optional[Sequence[str]] = None) -> list[Relation]:
    """The relations named by `ids` (all when None); an unknown id lists the valid ones."""
    relations = load_relations(root)
    if ids is None:
        return relations
    by_id = {r.id: r for r in relations}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ConfigError(f"unknown LAMA relation(s) {', '.join(unknown)}; valid: {', '.join(by_id)}")
    return [by_id[i] for i in ids]


# ---------------------------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class Fact:
    sub_label: str
    obj_label: str
    relation: str
    line: int  # line number in its file, for messages
    uuid: Optional[str] = None


def has_split(root: PathLike, relation: Union[str, Relation], split: str) -> bool:
    return (Path(root) / relation_file(relation, split)).is_file()


def load_facts(root: PathLike, relation: Union[str, Relation], split: str) -> list[Fact]:
    """Facts of one relation and split; a missing or empty file fails with its path (and why it is missing)."""
    rel_id = relation.id if isinstance(relation, Relation) else relation
    path = require(root, relation_file(rel_id, split))
    facts = []
    for lineno, row in rows(load_jsonl(path, required=FACT_FIELDS, allow_empty=False), FACT_COLUMNS):
        for name in FACT_FIELDS:
            if not isinstance(row[name], str) or not row[name].strip():
                raise DataError(f"{path}:{lineno}: field {name!r} must be a non-empty string, got {row[name]!r}")
        facts.append(Fact(row["sub_label"], row["obj_label"], rel_id, lineno, row.get("uuid")))
    return facts


# --------------------------------------------------------------------------------------------- vocab
@dataclass(frozen=True)
class AllowedVocab:
    """The words a prediction may take and their token ids (sorted, unique)."""

    strategy: str
    token_ids: tuple[int, ...]
    word_to_id: Mapping[str, int]
    description: str

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_id

    def __len__(self) -> int:
        return len(self.word_to_id)

    def id_of(self, word: str) -> int:
        return self.word_to_id[word]

    def tensor(self):
        """The allowed ids as a sorted LongTensor (for restricting the LM head)."""
        import torch

        return torch.tensor(self.token_ids, dtype=torch.long)


def load_vocab_file(root: PathLike, strategy: str) -> dict[str, list[str]]:
    """`29k-vocab.json` / `34k-vocab.json`: model-family key -> list of tokens."""
    if strategy not in VOCAB_FILES:
        raise ConfigError(f"strategy {strategy!r} has no vocabulary file; file strategies: {', '.join(VOCAB_FILES)}")
    path = require(root, VOCAB_FILES[strategy])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{path}: expected an object of model name -> list of tokens")
    return data


def strategy_words(root: PathLike, strategy: str) -> list[str]:
    """The strategy's words for a tokenizer that is not one of the file's keys: the union of its lists, 'Ġ' stripped."""
    words: dict[str, None] = {}
    for tokens in load_vocab_file(root, strategy).values():
        for token in tokens:
            words[token[1:] if token.startswith(BYTE_LEVEL_SPACE) else token] = None
    return sorted(words)


def allowed_vocab(
    root: PathLike,
    strategy: str,
    tokenizer,
    *,
    tokenizer_key: Optional[str] = None,
    space_before: bool,
) -> AllowedVocab:
    """The allowed prediction vocabulary for this tokenizer under a strategy (see the module docstring)."""
    if strategy not in VOCAB_STRATEGIES:
        raise ConfigError(f"unknown vocabulary strategy {strategy!r}; valid: {', '.join(VOCAB_STRATEGIES)}")
    if strategy == "full":
        return _full_vocab(tokenizer, space_before)
    lists = load_vocab_file(root, strategy)
    if tokenizer_key is not None and tokenizer_key in lists:
        return _keyed_vocab(strategy, lists[tokenizer_key], tokenizer, tokenizer_key)
    words = strategy_words(root, strategy)
    ids = single_token_ids(tokenizer, words, space_before=space_before)
    word_to_id = {w: i for w, i in zip(words, ids) if i is not None}
    where = "after a space" if space_before else "without a leading space"
    key_note = f"; key {tokenizer_key!r} is not in the file" if tokenizer_key else ""
    return AllowedVocab(
        strategy, tuple(sorted(set(word_to_id.values()))), word_to_id,
        f"{strategy}: {len(word_to_id)} of the {len(words)} words of {Path(VOCAB_FILES[strategy]).name} (union of its "
        f"lists) that are one token of this tokenizer {where}{key_note}",
    )


def matching_vocab_key(root: PathLike, strategy: str, tokenizer) -> Optional[str]:
    """The key of the strategy's file whose token list this tokenizer holds entirely (e.g. `gpt2-xl` for any
    GPT-2 tokenizer, `bert-base-cased` for BERT's cased vocabulary), else None. Decided from the vocabulary
    itself, never from the model's name; `full` has no file and no key."""
    if strategy not in VOCAB_FILES:
        return None
    vocab = tokenizer.get_vocab()
    for key, tokens in load_vocab_file(root, strategy).items():
        if all(t in vocab for t in tokens):
            return key
    return None


def _keyed_vocab(strategy: str, tokens: list[str], tokenizer, key: str) -> AllowedVocab:
    """The authors' way: the file's token list for this model family, looked up in the tokenizer's vocabulary."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ConfigError(
            f"tokenizer_key {key!r}: {len(missing)} of the {len(tokens)} tokens of {VOCAB_FILES[strategy]}[{key!r}] are "
            f"not in this tokenizer's vocabulary (e.g. {missing[:3]}); is it that model's tokenizer? Leave "
            "tokenizer_key unset to filter the words by this tokenizer instead"
        )
    word_to_id = {(t[1:] if t.startswith(BYTE_LEVEL_SPACE) else t): vocab[t] for t in tokens}
    return AllowedVocab(
        strategy, tuple(sorted(set(word_to_id.values()))), word_to_id,
        f"{strategy}: the {len(word_to_id)} tokens of {Path(VOCAB_FILES[strategy]).name}[{key!r}] (the authors' list)",
    )


def _full_vocab(tokenizer, space_before: bool) -> AllowedVocab:
    special = set(tokenizer.all_special_ids)
    candidates: dict[str, int] = {}
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if token_id in special:
            continue
        word = tokenizer.convert_tokens_to_string([token]).strip()
        if word and word not in candidates:
            candidates[word] = token_id
    words = list(candidates)
    ids = single_token_ids(tokenizer, words, space_before=space_before)
    word_to_id = {w: i for w, i in zip(words, ids) if i is not None and i == candidates[w]}
    where = "after a space" if space_before else "without a leading space"
    return AllowedVocab(
        "full", tuple(sorted(set(word_to_id.values()))), word_to_id,
        f"full: the {len(word_to_id)} vocabulary entries that are a whole word {where} (of {len(tokenizer)} entries)",
    )


def single_token_ids(tokenizer, words: Sequence[str], *, space_before: bool) -> list[Optional[int]]:
    """For each word, its token id if it encodes to exactly one non-special token, else None.

    Same encoding as `repro.core.template.word_token_ids` (the text `" " + word` when `space_before`, no special
    tokens), batched for speed.
    """
    if not words:
        return []
    prefix = " " if space_before else ""
    special = set(tokenizer.all_special_ids)
    encoded = tokenizer([prefix + w for w in words], add_special_tokens=False)["input_ids"]
    return [ids[0] if len(ids) == 1 and ids[0] not in special else None for ids in encoded]


def filter_facts(facts: Sequence[Fact], vocab: AllowedVocab) -> tuple[list[Fact], list[Fact]]:
    """(kept, dropped): a fact is kept when its object is an allowed word. Record both counts per relation."""
    kept = [f for f in facts if f.obj_label in vocab.word_to_id]
    dropped = [f for f in facts if f.obj_label not in vocab.word_to_id]
    return kept, dropped


# ---------------------------------------------------------------------------------------------- the task
class Lama(Task):
    """One LAMA relation as a task: an example is a fact (`{sub}` -> its object word), the answer is the
    argmax over the allowed vocabulary at the target (answer kind `vocab`, `repro.scorers.vocab`), the
    metric P@1. Patterns: `manual` the relation's prompt, `bare` the subject then the target (FT). P-tuning's
    template depends on the backbone kind and the run's choices (mask order, a user template), so the driver
    builds it (`repro.experiment.lama.ptuning_template`)."""

    name = "lama"
    kind = "vocab"
    paper_name = "LAMA"
    metrics = ("p_at_1",)
    in_paper_tables = False  # LAMA has its own tables (Table 2), not SuperGLUE columns
    in_avg = False

    def __init__(self, relation: Optional[Relation] = None, vocab: Optional[AllowedVocab] = None) -> None:
        self.relation = relation
        self.vocab = vocab
        self.manual_patterns = {"manual": relation.prompt} if relation is not None else {}

    def patterns(self, style: str) -> Mapping[str, str]:
        if style == "bare":
            return {"bare": "{sub} [MASK]"}
        return super().patterns(style)

    @staticmethod
    def facts_as_examples(facts: Sequence[Fact], split: str) -> list[Example]:
        return [Example(f"{relation_file(f.relation, split)}:{f.line}", {"sub": f.sub_label}, f.obj_label)
                for f in facts]

    def gold_ids(self, examples: Sequence[Example]) -> list[int]:
        return [self.vocab.id_of(ex.label) for ex in examples]

    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """P@1 of predicted token ids against the objects' ids (both within the allowed vocabulary)."""
        return {"p_at_1": metrics.p_at_1(predictions, self.gold_ids(examples))}
