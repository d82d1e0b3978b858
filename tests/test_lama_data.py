"""LAMA loader on the real files: relations, facts, partial marks, vocabulary strategies, fact filtering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from repro.errors import ConfigError, DataError
from repro.core.template import word_token_ids
from repro.tasks import lama

REBUILT = {"P1001", "P131", "P1376", "P17", "P190", "P276", "P279", "P30", "P36", "P361", "P37", "P47", "P530"}


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _file_words(shared: Path, name: str) -> set[str]:
    lists = json.loads((shared / "lama" / name).read_text())
    return {t[1:] if t.startswith("Ġ") else t for tokens in lists.values() for t in tokens}


# ------------------------------------------------------------------------------------------ relations
def test_41_trex_relations_with_templates(shared_data):
    relations = lama.load_relations(shared_data)
    folders = {p.name for p in (shared_data / lama.FACTS_DIR).iterdir()}
    assert len(relations) == 41 and {r.id for r in relations} == folders
    assert len(_lines(shared_data / lama.RELATIONS_FILE)) == 46  # 5 non-T-REx entries are left out
    by_id = {r.id: r for r in relations}
    assert by_id["P19"].template == "[X] was born in [Y] ." and by_id["P19"].label == "place of birth"
    assert by_id["P19"].prompt == "{sub} was born in [MASK] ."
    assert all("[X]" in r.template and "[Y]" in r.template for r in relations)
    assert [r.id for r in lama.get_relations(shared_data, ["P17", "P19"])] == ["P17", "P19"]
    with pytest.raises(ConfigError, match="unknown LAMA relation.*P999.*valid: P19"):
        lama.get_relations(shared_data, ["P17", "P999"])


def test_partial_marks(shared_data):
    relations = {r.id: r for r in lama.load_relations(shared_data)}
    rebuilt = {i for i, r in relations.items() if r.test_partial}
    assert rebuilt == REBUILT
    assert all(relations[i].test_partial.startswith("reconstructed: rebuilt from public LAMA subsets") for i in REBUILT)
    assert relations["P19"].partial == {} and relations["P19"].trainable
    assert relations["P190"].missing_splits == ("train",) and not relations["P190"].trainable
    assert relations["P530"].missing_splits == ("train",)
    assert relations["P47"].missing_splits == ("train", "dev")
    assert relations["P47"].split_status("dev") == "missing: no public copy under the snapshot size limit"
    assert not lama.has_split(shared_data, "P190", "train") and lama.has_split(shared_data, "P190", "dev")


# ---------------------------------------------------------------------------------------------- facts
@pytest.mark.parametrize("rel_id, split, count", [
    ("P17", "test", 930), ("P17", "train", 800), ("P19", "test", 944), ("P19", "dev", 200),
    ("P1376", "test", 234), ("P101", "train", 691),
])
def test_fact_counts(shared_data, rel_id, split, count):
    facts = lama.load_facts(shared_data, rel_id, split)
    assert len(facts) == count == len(_lines(shared_data / lama.relation_file(rel_id, split)))
    assert all(f.relation == rel_id and f.sub_label and f.obj_label for f in facts)


def test_fact_fields_and_all_test_facts(shared_data):
    first = lama.load_facts(shared_data, "P17", "test")[0]
    assert (first.sub_label, first.obj_label, first.line) == ("Eibenstock", "Germany", 1)
    assert first.uuid == "75e6e7c3-9697-4ad1-b805-5f79f52e8255"
    assert lama.load_facts(shared_data, "P17", "train")[0].uuid is None  # AutoPrompt splits have no uuid
    total = sum(len(lama.load_facts(shared_data, r, "test")) for r in lama.load_relations(shared_data))
    assert total == 34035  # 34,035 of LAMA's 34,039 (README of the mirror)


def test_missing_splits_fail_clearly(shared_data):
    with pytest.raises(DataError) as err:
        lama.load_facts(shared_data, "P190", "train")
    message = str(err.value)
    assert "P190/train.jsonl" in message and "missing from the data mirror itself" in message
    with pytest.raises(DataError, match="P47/dev.jsonl.*missing from the data mirror itself"):
        lama.load_facts(shared_data, "P47", "dev")
    with pytest.raises(ConfigError, match="valid: train, dev, test"):
        lama.load_facts(shared_data, "P17", "validation")


def test_missing_root_and_corrupt_lines(shared_data, tmp_path):
    with pytest.raises(DataError, match="fetch_data.sh"):
        lama.load_relations(tmp_path / "none")
    root = tmp_path / "data"
    (root / "lama").mkdir(parents=True)
    shutil.copyfile(shared_data / lama.RELATIONS_FILE, root / lama.RELATIONS_FILE)
    target = root / lama.relation_file("P17", "test")
    target.parent.mkdir(parents=True)
    lines = _lines(shared_data / lama.relation_file("P17", "test"))[:3]
    broken = json.loads(lines[1])
    del broken["obj_label"]
    target.write_text("\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n")
    assert [r.id for r in lama.load_relations(root)] == ["P17"]
    with pytest.raises(DataError) as err:
        lama.load_facts(root, "P17", "test")
    assert str(err.value) == f"{target}:2: missing field 'obj_label'"
    target.write_text(lines[0] + "\n" + lines[1][:20] + "\n")
    with pytest.raises(DataError, match=rf"{target}:2: invalid JSON"):
        lama.load_facts(root, "P17", "test")


# --------------------------------------------------------------------------------------------- vocab
def test_vocab_files_as_documented(shared_data):
    for strategy, name in (("29k", "29k-vocab.json"), ("34k", "34k-vocab.json")):
        lists = lama.load_vocab_file(shared_data, strategy)
        assert set(lists) == {"bert-base-cased", "bert-large-cased", "roberta-large", "gpt2-xl"}
        assert all(t.startswith("Ġ") for t in lists["gpt2-xl"] + lists["roberta-large"])
        assert set(lama.strategy_words(shared_data, strategy)) == set(lists["bert-base-cased"]) == _file_words(shared_data, name)
    assert len(lama.strategy_words(shared_data, "29k")) == 18154
    assert len(lama.strategy_words(shared_data, "34k")) == 21035


def _independent_split(shared_data, tokenizer, facts, space_before: bool, words: set[str]):
    """Kept/dropped by re-encoding each object on its own (not through `allowed_vocab`)."""
    special = set(tokenizer.all_special_ids)
    kept = []
    for fact in facts:
        ids = word_token_ids(tokenizer, fact.obj_label, space_before=space_before)
        if fact.obj_label in words and len(ids) == 1 and ids[0] not in special:
            kept.append(fact)
    return len(kept), len(facts) - len(kept)


@pytest.mark.parametrize("name, space_before", [("bert", False), ("gpt2", True)])
def test_file_strategy_on_tiny_tokenizers(shared_data, load_tiny, name, space_before):
    tokenizer = load_tiny(name).tokenizer
    words = _file_words(shared_data, "29k-vocab.json")
    vocab = lama.allowed_vocab(shared_data, "29k", tokenizer, tokenizer_key=None, space_before=space_before)
    assert 50 < len(vocab) < 1000 and "union of its lists" in vocab.description
    assert list(vocab.token_ids) == sorted(set(vocab.word_to_id.values()))
    assert vocab.tensor().tolist() == list(vocab.token_ids)
    for word, token_id in vocab.word_to_id.items():
        assert word in words
        assert word_token_ids(tokenizer, word, space_before=space_before) == [token_id]
        token = tokenizer.convert_ids_to_tokens(token_id)
        if space_before and word.isascii():
            assert token == "Ġ" + word  # the byte-level space form
        if not space_before:
            assert token == word and not token.startswith("##")

    facts = lama.load_facts(shared_data, "P17", "test")
    kept, dropped = lama.filter_facts(facts, vocab)
    assert (len(kept), len(dropped)) == _independent_split(shared_data, tokenizer, facts, space_before, words)
    assert 0 < len(kept) < len(facts) and len(kept) + len(dropped) == len(facts)
    assert all(f.obj_label in vocab for f in kept) and not any(f.obj_label in vocab for f in dropped)

    with pytest.raises(ConfigError, match="not in this tokenizer's vocabulary"):
        lama.allowed_vocab(shared_data, "29k", tokenizer, tokenizer_key="gpt2-xl", space_before=space_before)
    other = lama.allowed_vocab(shared_data, "29k", tokenizer, tokenizer_key="smollm2-135m", space_before=space_before)
    assert other.word_to_id == vocab.word_to_id and "not in the file" in other.description


@pytest.mark.parametrize("name, space_before", [("bert", False), ("gpt2", True)])
def test_full_strategy_is_whole_words(shared_data, load_tiny, name, space_before):
    tokenizer = load_tiny(name).tokenizer
    vocab = lama.allowed_vocab(shared_data, "full", tokenizer, space_before=space_before)
    assert len(vocab) > len(lama.allowed_vocab(shared_data, "29k", tokenizer, space_before=space_before)) // 2
    special = set(tokenizer.all_special_ids)
    for word, token_id in vocab.word_to_id.items():
        assert token_id not in special
        assert word_token_ids(tokenizer, word, space_before=space_before) == [token_id]
    tokens = tokenizer.convert_ids_to_tokens(list(vocab.token_ids))
    if space_before:
        assert all(t.startswith("Ġ") for t in tokens)
    else:
        assert not any(t.startswith("##") for t in tokens)
    with pytest.raises(ConfigError, match="valid: 29k, 34k, full"):
        lama.allowed_vocab(shared_data, "lama", tokenizer, space_before=space_before)


def test_keyed_lists_are_used_as_the_authors_did(shared_data):
    """A tokenizer that *is* the file's model family (built here from the file's own tokens)."""
    from transformers import BertTokenizer, GPT2Tokenizer

    lists = lama.load_vocab_file(shared_data, "29k")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bert = BertTokenizer(vocab={t: i for i, t in enumerate(specials + lists["bert-base-cased"])}, do_lower_case=False)
    vocab = lama.allowed_vocab(shared_data, "29k", bert, tokenizer_key="bert-base-cased", space_before=False)
    assert len(vocab) == 18154 and "the authors' list" in vocab.description
    assert vocab.id_of("Germany") == bert.convert_tokens_to_ids("Germany")

    gpt_tokens = ["<|endoftext|>"] + sorted(set(lists["gpt2-xl"]))
    gpt = GPT2Tokenizer(vocab={t: i for i, t in enumerate(gpt_tokens)}, merges=[])
    gvocab = lama.allowed_vocab(shared_data, "29k", gpt, tokenizer_key="gpt2-xl", space_before=True)
    assert set(gvocab.word_to_id) == set(vocab.word_to_id)  # the same 18,154 words, stored 'Ġ'-prefixed
    assert gpt.convert_ids_to_tokens(gvocab.id_of("Germany")) == "ĠGermany"

    facts = lama.load_facts(shared_data, "P19", "test")
    kept, dropped = lama.filter_facts(facts, gvocab)
    authors = sum(1 for f in facts if "Ġ" + f.obj_label in set(lists["gpt2-xl"]))  # token_wrapper + `in vocab`
    assert len(kept) == authors and len(dropped) == len(facts) - authors
