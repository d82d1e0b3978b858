"""SuperGLUE from the Hugging Face hub (`--data-source hub`): the hub's `super_glue` dataset, each row mapped to
the row of the SuperGLUE jsonl file that the task adapters read (labels included), so that a task makes the
same examples from either source.

The hub's schema per config (the `datasets` SuperGLUE script, huggingface/datasets
datasets/super_glue/super_glue.py `_info` and `_generate_examples`, from which the hub's files were made):
every config has `idx` and, except ReCoRD, a ClassLabel `label` whose unlabeled (test) rows hold -1.
- boolq: question, passage; label False/True.        cb: premise, hypothesis; label entailment/contradiction/neutral.
- copa: premise, choice1, choice2, question; label choice1/choice2.
- rte, axg: premise, hypothesis; axb: sentence1, sentence2; label entailment/not_entailment.
- wic: word, sentence1, sentence2, start1, start2, end1, end2; label False/True.
- wsc: text, span1_index, span2_index, span1_text, span2_text; label False/True (the file's WSC, not wsc.fixed).
- multirc: one row per answer option: paragraph, question, answer, idx {paragraph, question, answer}; label
  False/True.
- record: one row per query: passage, query, entities (the distinct entity strings, sorted), answers (the
  distinct answer strings, sorted), idx {passage, query}; later versions add entity_spans {text, start, end}.

Back to the jsonl rows: a label becomes the file's value (BoolQ, WiC, WSC: booleans; MultiRC: 0/1; COPA: the
index; the others: the class name), -1 no label field; WSC's spans go under `target`; MultiRC's answer rows are
grouped back into passages (questions and answers in the hub's order); a ReCoRD query becomes a row of its
own, its entities spans of the passage (the hub's `entity_spans` where it has them, else each entity's first
occurrence), its answers `{"text": ...}`. Without `entity_spans`, an entity's mention is its first occurrence as a word
outside the mentions of longer entities ("Costa" after "Diego Costa"): the candidates are the file's, in the
file's order of first mention unless a mention the file did not tag comes first; the answers come sorted.

Only the `superglue/` files come from the hub: FewGLUE (few-shot training sets, dev32) is not on it and is read
from the data root. The hub is checked before anything loads: with HF_HUB_OFFLINE set, `datasets` reads its own
cache (a split not in it fails at once); otherwise one short connection to the hub decides (no minutes of
retries), and either failure is one ConfigError line.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from repro.errors import ConfigError, DataError
from repro.splits import quiet_datasets
from repro.tasks.base import Example, Task

if TYPE_CHECKING:
    import datasets

HUB_DATASET = "super_glue"
SOURCES = ("local", "hub")
# file name under superglue/<Task>/ -> the hub's split
HUB_SPLITS = {"train.jsonl": "train", "val.jsonl": "validation", "AX-b.jsonl": "test", "AX-g.jsonl": "test"}
Row = dict[str, Any]


def check_source(source: str, benchmark: str) -> None:
    """A data source is one of SOURCES, and `hub` serves SuperGLUE only."""
    if source not in SOURCES:
        raise ConfigError(f"unknown data source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "hub" and benchmark != "superglue":
        raise ConfigError(f"--data-source hub reads SuperGLUE from the hub's {HUB_DATASET} dataset; {benchmark} "
                          "reads the data root (valid: local)")


def from_hub(relpath: str) -> bool:
    """Whether a file of a run is read from the hub (the `superglue/` files; FewGLUE stays in the data root)."""
    return PurePosixPath(relpath).parts[0] == "superglue"


def hub_split(task: Task, relpath: str) -> tuple[str, str]:
    """(config, split) of the hub dataset that holds a task's SuperGLUE file."""
    name = PurePosixPath(relpath).name
    if not from_hub(relpath) or name not in HUB_SPLITS or task.name not in MAPPERS:
        raise ConfigError(f"{relpath} ({task.name}) is not in the hub's {HUB_DATASET} dataset; "
                          f"tasks there: {', '.join(MAPPERS)}")
    return task.name, HUB_SPLITS[name]


def source_name(config: str, split: str) -> str:
    """How examples from the hub name their origin (`uid` is `<this>:<row number>`)."""
    return f"hub:{HUB_DATASET}/{config}/{split}"


# ------------------------------------------------------------------------------------------------ loading
def load_split(config: str, split: str) -> "datasets.Dataset":
    """One split of the hub dataset, or a one-line ConfigError within seconds when the hub cannot give it."""
    import datasets

    from repro.core.backbone import hub_offline, probe_hub

    what = f"the hub's {HUB_DATASET} {config} {split}"
    if not hub_offline():
        unreachable = probe_hub()
        if unreachable is not None:
            raise ConfigError(f"--data-source hub: cannot read {what}: the hub does not answer ({unreachable}); use "
                              "--data-source local (the data root), or set HF_HUB_OFFLINE=1 to read a copy "
                              "the datasets cache holds")
    try:
        with quiet_datasets():
            return datasets.load_dataset(HUB_DATASET, config, split=split)
    except Exception as err:  # offline and not cached, unknown config, a hub error: one line, not a traceback
        first = (str(err).strip().splitlines() or [""])[0]
        raise ConfigError(f"--data-source hub: cannot read {what} ({type(err).__name__}: {first})") from None


def read(task: Task, relpath: str) -> tuple[list[Example], str]:
    """A task's examples of one SuperGLUE file, read from the hub; and the hub split's fingerprint."""
    config, split = hub_split(task, relpath)
    dataset = load_split(config, split)
    return examples(task, dataset, source_name(config, split)), dataset._fingerprint


def fingerprint(task: Task, relpath: str) -> str:
    """The hub split's fingerprint (`datasets`' own, from the hub files' revision): what a result's data fields
    record for it in place of a file's sha256."""
    return load_split(*hub_split(task, relpath))._fingerprint


def examples(task: Task, dataset: "datasets.Dataset", source: str) -> list[Example]:
    """A task's examples of a hub split (rows mapped back to the jsonl rows, then the task's own `example`)."""
    if task.name not in MAPPERS:
        raise ConfigError(f"task {task.name!r} has no mapping from the hub's {HUB_DATASET}; valid: {', '.join(MAPPERS)}")
    names = label_names(dataset)
    local = MAPPERS[task.name](dataset.to_list(), names)
    if not local:
        raise DataError(f"{source}: empty (no row)")
    return task.examples_of(enumerate(local, start=1), source)


def label_names(dataset: "datasets.Dataset") -> Optional[Sequence[str]]:
    feature = dataset.features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


# ------------------------------------------------------------------------------------------------ the mappers
def _label(row: Row, names: Optional[Sequence[str]], value: Callable[[int, str], Any]) -> Row:
    """`{"label": value(index, class name)}`, or {} for an unlabeled row (-1)."""
    index = row.get("label")
    if index is None or int(index) < 0:
        return {}
    if names is None or not 0 <= int(index) < len(names):
        raise DataError(f"hub label {index!r} is not one of the classes {names}")
    return {"label": value(int(index), names[int(index)])}


def _boolean(index: int, name: str) -> bool:
    if name not in ("False", "True"):
        raise DataError(f"hub label {name!r}: expected False or True")
    return name == "True"


def _by_name(index: int, name: str) -> str:
    return name


def _by_index(index: int, name: str) -> int:
    return index


def _flat(fields: Sequence[str], value: Callable[[int, str], Any]) -> Callable[[list[Row], Any], list[Row]]:
    """Tasks whose hub row is the jsonl row: the same fields, the label converted."""
    def mapper(rows: list[Row], names: Any) -> list[Row]:
        return [{**{f: row[f] for f in fields}, "idx": row["idx"], **_label(row, names, value)} for row in rows]
    return mapper


def _wsc(rows: list[Row], names: Any) -> list[Row]:
    spans = ("span1_index", "span2_index", "span1_text", "span2_text")
    return [{"text": row["text"], "target": {k: row[k] for k in spans}, "idx": row["idx"],
             **_label(row, names, _boolean)} for row in rows]


def _multirc(rows: list[Row], names: Any) -> list[Row]:
    """Answer rows back into passages: {idx, passage: {text, questions: [{question, idx, answers: [...]}]}}."""
    passages: dict[Any, Row] = {}
    questions: dict[tuple[Any, Any], Row] = {}
    for row in rows:
        idx = row["idx"]
        passage = passages.setdefault(idx["paragraph"], {"idx": idx["paragraph"],
                                                         "passage": {"text": row["paragraph"], "questions": []}})
        key = (idx["paragraph"], idx["question"])
        if key not in questions:
            questions[key] = {"question": row["question"], "idx": idx["question"], "answers": []}
            passage["passage"]["questions"].append(questions[key])
        answer = {"text": row["answer"], "idx": idx["answer"], **_label(row, names, lambda i, n: int(_boolean(i, n)))}
        questions[key]["answers"].append(answer)
    return list(passages.values())


def _record(rows: list[Row], names: Any) -> list[Row]:
    """One row per query: {idx, passage: {text, entities: [{start, end}]}, qas: [{query, idx, answers}]}."""
    return [{"idx": row["idx"]["passage"],
             "passage": {"text": row["passage"], "entities": _entity_spans(row)},
             "qas": [{"query": row["query"], "idx": row["idx"]["query"],
                      "answers": [{"text": a} for a in row.get("answers") or ()]}]}
            for row in rows]


def _entity_spans(row: Row) -> list[Row]:
    """The passage's entities as inclusive spans in order of position: the hub's `entity_spans` where its text is
    at its start (whatever its end convention), else a mention found in the passage (`_first_mention`)."""
    text = row["passage"]
    spans: dict[tuple[int, int], None] = {}
    given = row.get("entity_spans") or {}
    for entity, start in zip(given.get("text") or (), given.get("start") or ()):
        if entity and text[int(start):int(start) + len(entity)] == entity:
            spans[(int(start), int(start) + len(entity) - 1)] = None
    found = {text[s : e + 1] for s, e in spans}
    taken: list[tuple[int, int]] = []  # every mention of a longer entity: "Costa" is not the one in "Diego Costa"
    for entity in sorted(set(row.get("entities") or ()) - found, key=lambda e: (-len(e), e)):
        word = rf"(?<!\w){re.escape(entity)}(?!\w)"
        mentions = [(m.start(), m.end()) for m in re.finditer(word, text)] if entity else []
        free = [m for m in mentions if not any(a < m[1] and m[0] < b for a, b in taken)]
        if not (free or mentions):
            raise DataError(f"ReCoRD entity {entity!r} does not occur in its passage as a word")
        start, end = (free or mentions)[0]
        spans[(start, end - 1)] = None
        taken += mentions
    return [{"start": s, "end": e} for s, e in sorted(spans)]


MAPPERS: dict[str, Callable[[list[Row], Any], list[Row]]] = {
    "boolq": _flat(("question", "passage"), _boolean),
    "cb": _flat(("premise", "hypothesis"), _by_name),
    "copa": _flat(("premise", "choice1", "choice2", "question"), _by_index),
    "multirc": _multirc,
    "record": _record,
    "rte": _flat(("premise", "hypothesis"), _by_name),
    "wic": _flat(("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2"), _boolean),
    "wsc": _wsc,
    "axb": _flat(("sentence1", "sentence2"), _by_name),
    "axg": _flat(("premise", "hypothesis"), _by_name),
}
