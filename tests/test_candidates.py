"""Multi-token candidate scoring and span prediction (repro.scorers.candidates, repro.scorers.span, through
repro.core.inference) on tiny masked and causal LMs: shared forwards give the numbers of plain ones, a boosted
right answer wins, the losses, truncation."""

from __future__ import annotations

import pytest
import torch

from repro.core.batch import collate, pad_id_of
from repro.errors import ConfigError
from repro.methods import get_method
from repro.core.model import PromptedLM
from repro.ptuning import PromptEncoder, PromptEncoderConfig
from repro.core.inference import answer_log_probs, predict_span_tokens, token_log_probs
from repro.scorers.candidates import (
    CandidateOptions,
    CandidateScorer,
    candidate_loss,
    reduce_scores,
    render_candidates,
)
from repro.scorers.span import SpanScorer, render_span_input
from repro.scorers.base import ScorerContext, make_scorer
from repro.core.template import Template, TemplateError, word_token_ids
from repro.tasks.base import Example
from repro.tasks.copa import Copa
from repro.tasks.record import Record
from repro.tasks.wsc import Wsc, pet_span_match


def context(task, model: PromptedLM, style: str = "manual", *, max_length: int = 256,
            batch_size: int = 8) -> ScorerContext:
    """What the engine hands a scorer: the task's default pattern of the style for this backbone."""
    variant = task.default_variant(style, causal=model.backbone.is_causal)
    template = Template.parse(task.pattern(style, variant), masked=not model.backbone.is_causal)
    method = get_method("mp" if style == "manual" else "ptuning", "superglue")
    return ScorerContext(task, method, model, template, variant, max_length, batch_size, quiet=True)


def prompted(backbone, task, style: str = "manual", *, train_backbone: bool = False) -> PromptedLM:
    """The prompted LM with a (seeded) prompt encoder sized for the task's pattern, as the engine builds it."""
    model = PromptedLM(backbone, train_backbone=train_backbone)
    n = context(task, model, style).template.num_prompt_tokens
    if n:
        torch.manual_seed(3)
        model.encoder = PromptEncoder(PromptEncoderConfig(num_virtual_tokens=n, token_dim=backbone.hidden_size))
    return model


def boost(backbone, token_ids, amount: float = 30.0) -> None:
    """Make `token_ids` far more likely everywhere: add `amount` to their output bias (created if absent)."""
    head = backbone.output_embeddings()
    with torch.no_grad():
        if head.bias is None:
            head.bias = torch.nn.Parameter(torch.zeros(head.out_features))
        head.bias[torch.tensor(sorted(set(token_ids)))] += amount


@pytest.fixture(scope="module")
def copa_dev(shared_data):
    return Copa().read(shared_data / "fewglue" / "COPA" / "dev32.jsonl")


@pytest.fixture(scope="module")
def record_dev(shared_data):
    return Record().read(shared_data / "fewglue" / "ReCoRD" / "dev32.jsonl")


@pytest.fixture(scope="module")
def wsc_val(shared_data):
    return Wsc().read(shared_data / "superglue" / "WSC" / "val.jsonl")


# --------------------------------------------------------------------------- shared forwards, same numbers
@pytest.mark.parametrize("name", ["albert", "llama"])
def test_shared_forwards_give_the_numbers_of_one_forward_per_candidate(load_tiny, name, record_dev, copa_dev):
    """Masked: candidates with as many tokens share an input; causal: candidates share the prefix's cache
    (right-padded prefixes of different lengths in one batch). Both must equal `answer_log_probs`, which runs
    every candidate's full input on its own. With a prompt encoder and truncated passages."""
    backbone = load_tiny(name)
    model = prompted(backbone, Record(), "ptuning")
    rendered = []
    for ex in record_dev[:1]:
        rendered += render_candidates(context(Record(), model, "ptuning").template, backbone.tokenizer, ex,
                                      causal=backbone.is_causal, max_length=120)
    for ex in copa_dev[:2]:
        rendered += render_candidates(context(Copa(), model, "manual").template, backbone.tokenizer, ex,
                                      causal=backbone.is_causal, max_length=None)
    with torch.no_grad():
        expected = answer_log_probs(model, rendered, batch_size=5, quiet=True)
        ours = token_log_probs(model, rendered, batch_size=4)
    assert [len(e) for e in expected] == [len(o) for o in ours]
    for e, o in zip(expected, ours):
        torch.testing.assert_close(o, torch.tensor(e), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["gpt2"])
def test_cached_greedy_generation_matches_step_by_step_full_forwards(load_tiny, name, wsc_val):
    backbone = load_tiny(name)
    model = prompted(backbone, Wsc(), "ptuning")
    template = context(Wsc(), model, "ptuning").template
    examples, steps = wsc_val[:3], 2
    rendered = [render_span_input(template, backbone.tokenizer, ex, steps, causal=True, max_length=None)
                for ex in examples]
    cached = predict_span_tokens(model, rendered, [steps] * len(examples), batch_size=3)
    for ex, got in zip(examples, cached):
        generated: list[int] = []
        for _ in range(steps):  # re-render the whole input with what was generated so far: one full forward
            probe = template.render(backbone.tokenizer, ex.values, causal=True, target_ids=generated + [0])
            with torch.no_grad():
                logits = model.target_logits(collate([probe], pad_id_of(backbone.tokenizer)))
            generated.append(int(logits[0, len(generated)].argmax()))
        assert got == generated


# --------------------------------------------------------------------------- the boosted answer wins
@pytest.mark.parametrize("name", ["roberta", "llama"])
def test_copa_picks_the_choice_made_much_more_likely(load_tiny, name, copa_dev):
    for ex in copa_dev[:2]:
        for boosted in (0, 1):
            model = PromptedLM(load_tiny(name))
            scorer = make_scorer(context(Copa(), model))
            ids = word_token_ids(model.backbone.tokenizer, ex.candidates[boosted], space_before=True)
            boost(model.backbone, ids)
            assert scorer.predict([ex]) == [boosted], (ex.uid, ex.candidates)


def _singled_out_gold(examples, tokenizer):
    """Queries where no wrong entity is made only of the first gold answer's tokens (so a boost of those
    tokens singles out a gold answer)."""
    ids = lambda text: set(word_token_ids(tokenizer, text, space_before=True))
    return [ex for ex in examples
            if all(not ids(c) <= ids(ex.candidates[ex.label]) for c in ex.candidates if c not in ex.meta["answers"])]


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_record_picks_the_boosted_entity_and_scores_em_f1(load_tiny, name, record_dev):
    chosen = _singled_out_gold(record_dev, load_tiny(name).tokenizer)[:2]
    assert len(chosen) == 2
    predictions = []
    for ex in chosen:
        model = PromptedLM(load_tiny(name))
        scorer = make_scorer(context(Record(), model, max_length=200))
        boost(model.backbone, word_token_ids(model.backbone.tokenizer, ex.candidates[ex.label], space_before=True))
        predictions += scorer.predict([ex])
    assert all(ex.candidates[p] in ex.meta["answers"] for p, ex in zip(predictions, chosen))  # any gold answer
    assert Record().score(chosen, predictions) == {"em": 100.0, "f1": 100.0}


def test_wsc_masked_prediction_of_the_referents_words_counts_as_refers_to(load_tiny, wsc_val):
    """The bias boosts the referent's tokens at every mask, so the argmax may repeat or reorder them: take
    referents whose tokens are whole words, for which any such sequence is a word subset (PET's rule)."""
    tokenizer = load_tiny("bert").tokenizer

    def wordwise(ex):
        words = ex.candidates[0].lower().split()
        return all(tokenizer.decode([i]).strip().lower() in words
                   for i in word_token_ids(tokenizer, ex.candidates[0], space_before=True))

    usable = [ex for ex in wsc_val if wordwise(ex)]
    one_word = [ex for ex in usable if " " not in ex.candidates[0]]
    chosen = one_word[:1] + [ex for ex in usable if " " in ex.candidates[0]][:1]
    assert len(chosen) == 2
    for ex in chosen:
        model = PromptedLM(load_tiny("bert"))
        scorer = make_scorer(context(Wsc(), model))
        boost(model.backbone, word_token_ids(tokenizer, ex.candidates[0], space_before=True), amount=60.0)
        predicted = scorer.predict([ex])[0]
        assert pet_span_match(predicted, ex.candidates[0]), (predicted, ex.candidates[0])
        assert Wsc().score([ex], [predicted]) == {"acc": 100.0 if ex.label else 0.0}


@pytest.mark.parametrize("name", ["llama"])
def test_greedy_generation_produces_the_boosted_referents_tokens(load_tiny, name, wsc_val):
    """Causal: as many tokens as the referent has, each one of the boosted referent's tokens."""
    for ex in wsc_val[:2]:
        model = PromptedLM(load_tiny(name))
        template = context(Wsc(), model).template
        gold_ids = word_token_ids(model.backbone.tokenizer, ex.candidates[0], space_before=True)
        boost(model.backbone, gold_ids, amount=60.0)
        rendered = render_span_input(template, model.backbone.tokenizer, ex, len(gold_ids), causal=True,
                                     max_length=None)
        generated = predict_span_tokens(model, [rendered], [len(gold_ids)])[0]
        assert len(generated) == len(gold_ids) and set(generated) <= set(gold_ids)


# --------------------------------------------------------------------------- scores and losses
def test_reduce_scores_sum_and_length_normalised_mean():
    lps = [torch.tensor([-1.0, -3.0]), torch.tensor([-1.5])]
    assert reduce_scores(lps, "sum").tolist() == [-4.0, -1.5]
    assert reduce_scores(lps, "mean").tolist() == [-2.0, -1.5]


def test_candidate_losses_by_hand():
    scores = torch.tensor([-1.0, -3.0, -0.5])
    torch.testing.assert_close(candidate_loss(scores, 0, "ce"), 1.0 + torch.logsumexp(scores, 0))
    # hinge: max(0, 1 - (s_gold - s_wrong)) over the wrong ones: max(0, 1 - 2) + max(0, 1 - (-0.5)) = 1.5
    torch.testing.assert_close(candidate_loss(scores, 0, "hinge"), torch.tensor(1.5))
    assert float(candidate_loss(torch.tensor([0.0, -5.0]), 0, "hinge")) == 0.0


@pytest.mark.parametrize("name, loss", [("albert", "ce"), ("llama", "hinge")])
def test_candidate_loss_reaches_the_encoder_and_the_lm(load_tiny, name, loss, copa_dev):
    backbone = load_tiny(name)
    model = prompted(backbone, Copa(), "ptuning", train_backbone=True)
    scorer = CandidateScorer(context(Copa(), model, "ptuning"), CandidateOptions(normalize="mean", loss=loss))
    model.train()
    items = scorer.train_items(copa_dev[:2])
    assert len(items) == 4  # PET's mirrored copies
    value = scorer.loss(items)
    value.backward()
    assert value.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert backbone.input_embeddings().weight.grad is not None
    assert scorer.describe()["normalize"] == "mean" and scorer.describe()["candidate_loss"] == loss


# --------------------------------------------------------------------------- truncation
@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_every_candidate_sees_the_same_truncated_passage(load_tiny, name, record_dev):
    backbone = load_tiny(name)
    template = context(Record(), PromptedLM(backbone)).template
    rendered = render_candidates(template, backbone.tokenizer, record_dev[0], causal=backbone.is_causal, max_length=96)
    assert all(r.truncated > 0 for r in rendered)
    if backbone.is_causal:  # everything before the answer's first token
        contexts = {tuple(r.input_ids[: r.target_positions[0] + 1]) for r in rendered}
    else:  # everything around the masks
        contexts = {(tuple(r.input_ids[: r.target_positions[0]]), tuple(r.input_ids[r.target_positions[-1] + 1 :]))
                    for r in rendered}
    assert len(contexts) == 1, "the text around the answer differs between candidates"
    lengths = [len(r.target_ids) for r in rendered]
    assert len(rendered[lengths.index(max(lengths))].input_ids) == 96
    assert max(len(r.input_ids) for r in rendered) == 96


def test_a_candidate_that_cannot_fit_names_the_example_and_the_candidate(load_tiny):
    backbone = load_tiny("roberta")
    template = context(Record(), PromptedLM(backbone)).template
    ex = Example(uid="fewglue/ReCoRD/dev32.jsonl:7#q3", label=0,
                 values={"passage": "A long passage about Bhutto .", "query_before": "Long live", "query_after": " !"},
                 candidates=("Benazir Bhutto", "the Pakistan People's Party of Zulfikar Ali Bhutto"))
    with pytest.raises(TemplateError) as err:
        render_candidates(template, backbone.tokenizer, ex, causal=False, max_length=12)
    message = str(err.value)
    assert "fewglue/ReCoRD/dev32.jsonl:7#q3" in message
    assert "the Pakistan People's Party of Zulfikar Ali Bhutto" in message
    assert "no shortenable text is left" in message


# --------------------------------------------------------------------------- registration
def test_the_engine_gets_these_scorers_by_task_kind(load_tiny):
    model = PromptedLM(load_tiny("bert"))
    assert isinstance(make_scorer(context(Copa(), model)), CandidateScorer)
    assert isinstance(make_scorer(context(Record(), model)), CandidateScorer)
    assert isinstance(make_scorer(context(Wsc(), model)), SpanScorer)
    without_target = ScorerContext(Copa(), get_method("mp", "superglue"), model,
                                   Template.parse("{premise}", allow_no_target=True), "plain", 64, 8)
    with pytest.raises(ConfigError, match=r"scored through a \[MASK\] target; method 'mp' with pattern 'plain'"):
        make_scorer(without_target)


def test_scorer_options_are_checked(load_tiny):
    model = PromptedLM(load_tiny("bert"))
    ctx = context(Copa(), model)
    ctx.options = {"normalize": "mean", "loss": "hinge"}
    assert make_scorer(ctx).options == CandidateOptions(normalize="mean", loss="hinge")
    ctx.options = {"normalize": "max"}
    with pytest.raises(ConfigError, match="unknown normalize 'max'; valid: sum, mean"):
        make_scorer(ctx)
    ctx.options = {"temperature": "2"}
    with pytest.raises(ConfigError, match=r"unknown scorer option\(s\) temperature; valid: normalize, loss"):
        make_scorer(ctx)
    wsc = context(Wsc(), model)
    wsc.options = {"normalize": "mean"}
    with pytest.raises(ConfigError, match="valid: none"):
        make_scorer(wsc)
