"""Token-budget batching (`length_batches` with `max_tokens`), the list-built collate and the unmasked forward
of unpadded batches: same predictions as the plain row-count batches, order kept, budget respected."""

from __future__ import annotations

import random

import pytest
import torch

from repro.core.backbone import BackboneKind
from repro.core.batch import collate
from repro.core.inference import argmax_candidates, length_batches
from repro.core.model import PromptedLM
from repro.core.template import Rendered, Template, word_token_ids
from repro.errors import ConfigError


def _fake(lengths: list[int]) -> list[Rendered]:
    return [Rendered(list(range(n)), [0] * n, [], [n - 1], [1]) for n in lengths]


def _lengths(seed: int = 0, n: int = 300) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([3, 4, 5, 5, 6, 6, 6, 7, 7, 8, 9, 12, 20, 31]) for _ in range(n)]


@pytest.mark.parametrize("budget", [16, 64, 100, 1000])
def test_token_batches_cover_every_index_once_within_the_budget(budget):
    lengths = _lengths()
    batches = length_batches(_fake(lengths), batch_size=50, max_tokens=budget)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) <= 50
        assert len(b) == 1 or len(b) * width <= budget  # a single too-long row still gets its own batch


def test_token_batches_are_length_sorted_and_stable():
    lengths = _lengths(1)
    flat = [i for b in length_batches(_fake(lengths), 64, max_tokens=128) for i in b]
    assert flat == sorted(range(len(lengths)), key=lambda i: lengths[i])


def test_common_lengths_get_unpadded_batches_rare_ones_share():
    lengths = [5] * 40 + [6] * 40 + [7, 8, 9]
    batches = length_batches(_fake(lengths), 1000, max_tokens=100)
    widths = [[lengths[i] for i in b] for b in batches]
    # full batches of one length (20 x 5 and 16 x 6 tokens fill the budget), then the 6s' remainder (under half
    # a budget) shares a padded batch with the rare lengths
    assert widths[:4] == [[5] * 20, [5] * 20, [6] * 16, [6] * 16]
    assert all(len(set(w)) > 1 for w in widths[4:]) and sum(map(len, widths[4:])) == 11


def test_row_only_batching_is_unchanged_and_bad_budgets_are_refused():
    lengths = _lengths(2, 50)
    batches = length_batches(_fake(lengths), 8)
    assert [len(b) for b in batches] == [8] * 6 + [2]
    with pytest.raises(ConfigError, match="max_tokens"):
        length_batches(_fake(lengths), 8, max_tokens=0)


def test_collate_pads_and_marks_like_the_rendered_rows():
    rows = [Rendered([5, 6, 7], [0, 0, 1], [1], [2], [9]), Rendered([8], [0], [], [0], [4])]
    batch = collate(rows, pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.token_type_ids.tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch.prompt_index.tolist() == [[-1, 0, -1], [-1, -1, -1]]
    assert batch.target_positions.tolist() == [[2], [0]] and batch.target_ids.tolist() == [[9], [4]]
    assert collate([Rendered([1], [0], [], [0], None)], 0).target_ids is None


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_token_budget_predictions_equal_the_plain_batches(load_tiny, name):
    backbone = load_tiny(name)
    model = PromptedLM(backbone)
    tok = backbone.tokenizer
    causal = backbone.kind is BackboneKind.CAUSAL
    template = Template.parse("{sub} is located in [MASK] .")
    words = "Paris Rome Berlin the old city of London a small town near Madrid".split()
    rng = random.Random(0)
    subjects = [" ".join(rng.sample(words, rng.randint(1, 6))) for _ in range(40)]
    rendered = [template.render(tok, {"sub": s}, causal=causal, target_ids=word_token_ids(tok, "France", space_before=True)[:1])
                for s in subjects]
    candidates = torch.arange(5, 60)
    plain = argmax_candidates(model, rendered, candidates, batch_size=1, max_tokens=None, quiet=True)
    budget = argmax_candidates(model, rendered, candidates, batch_size=64, max_tokens=48, quiet=True)
    assert torch.equal(plain, budget)
    assert len({len(r.input_ids) for r in rendered}) > 2  # the inputs really differ in length


def test_a_length_key_without_a_row_limit_cuts_by_tokens_alone():
    # joint training's passes: items that are not rendered inputs, measured by a key, no cap on rows
    lengths = [5] * 40 + [6] * 40 + [7, 8, 9]
    items = [{"n": n} for n in lengths]
    batches = length_batches(items, None, max_tokens=100, length=lambda item: item["n"])
    assert batches == length_batches(_fake(lengths), 1000, max_tokens=100)
    assert length_batches(items, None, max_tokens=10_000, length=lambda item: item["n"]) == [
        sorted(range(len(lengths)), key=lambda i: lengths[i])]
    with pytest.raises(ConfigError, match="batch_size or a max_tokens"):
        length_batches(items, None, length=lambda item: item["n"])
