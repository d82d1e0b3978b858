"""repro.core.inference: the one gather of target log-probabilities (by hand, with padding), and that every
scoring path reads answer tokens through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from repro.core import inference
from repro.core.backbone import BackboneKind
from repro.core.inference import gather_target_log_probs
from repro.core.model import PromptedLM
from repro.core.template import Template, word_token_ids

REPRO = Path(__file__).resolve().parents[1] / "repro"


def test_gather_picks_each_rows_targets_and_reads_zero_where_padded():
    log_probs = torch.log_softmax(torch.arange(24, dtype=torch.float32).view(2, 3, 4), dim=-1)
    targets = torch.tensor([[3, 0, -100], [1, -100, -100]])
    expected = torch.tensor([[log_probs[0, 0, 3], log_probs[0, 1, 0], 0.0], [log_probs[1, 0, 1], 0.0, 0.0]])
    assert torch.equal(gather_target_log_probs(log_probs, targets), expected)
    # one row without a batch dimension, as the shared-forward paths call it
    assert torch.equal(gather_target_log_probs(log_probs[0, :2], torch.tensor([3, 0])), expected[0, :2])


def test_padding_reads_zero_even_where_the_padded_slot_holds_minus_infinity():
    log_probs = torch.full((1, 2, 3), float("-inf"))
    log_probs[0, 0, 2] = -0.5
    picked = gather_target_log_probs(log_probs, torch.tensor([[2, -100]]))
    assert picked.tolist() == [[-0.5, 0.0]] and picked.sum().item() == -0.5


def test_only_the_inference_module_gathers_or_runs_the_head():
    """Source check: one `.gather(` in repro/, one call of the LM head, one log-softmax over the vocabulary."""
    sources = {p: p.read_text() for p in REPRO.rglob("*.py")}

    def where(pattern):
        return sorted(str(p.relative_to(REPRO)) for p, text in sources.items() for _ in re.finditer(pattern, text))
    assert where(r"\.gather\(") == ["core/inference.py"]
    assert where(r"\.head\(\)\(") == ["core/model.py"]
    assert where(r"log_softmax\(.*dim=-1\)") == ["core/model.py"]


@pytest.mark.parametrize("name", ["roberta", "llama"])
def test_every_scoring_path_reads_answer_tokens_through_the_gather(load_tiny, name, monkeypatch):
    calls = []
    original = inference.gather_target_log_probs

    def spy(log_probs, target_ids):
        calls.append(tuple(target_ids.shape))
        return original(log_probs, target_ids)

    monkeypatch.setattr(inference, "gather_target_log_probs", spy)
    backbone = load_tiny(name)
    model = PromptedLM(backbone)
    causal = backbone.kind is BackboneKind.CAUSAL
    template = Template.parse("{sub} is located in [MASK] .")
    tok = backbone.tokenizer
    rendered = [template.render(tok, {"sub": s}, causal=causal,
                                target_ids=word_token_ids(tok, o, space_before=True)[:1])
                for s, o in [("Paris", "France"), ("Rome", "Italy")]]
    with torch.no_grad():
        full = inference.answer_log_probs(model, rendered, quiet=True)
        assert len(calls) == 1
        shared = inference.token_log_probs(model, rendered)
        assert len(calls) == 3  # one per input
        summed = inference.summed_answer_log_probs(model, rendered)
        assert len(calls) == 4
    torch.testing.assert_close(torch.stack(shared).squeeze(1), torch.tensor([f[0] for f in full]))
    torch.testing.assert_close(summed, torch.tensor([f[0] for f in full]))
