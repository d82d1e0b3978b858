"""CLS-FT (repro.scorers.classifier) on tiny causal and masked LMs: the head serves every task kind, COPA as a
multiple-choice head (one input per choice), WSC as a binary head over (text, span) pairs, both trainable; the
engine runs them end to end."""

from __future__ import annotations

import pytest
import torch

from repro.core.inference import classifier_logits
from repro.core.model import PromptedLM
from repro.core.template import Template
from repro.errors import ConfigError
from repro.methods import get_method
from repro.scorers.base import ScorerContext, make_scorer
from repro.scorers.classifier import ChoiceClassifierScorer, ClassifierScorer
from repro.tasks.base import Example
from repro.tasks.copa import Copa
from repro.tasks.record import Record
from repro.tasks.wsc import Wsc

COPA_ROWS = [
    {"premise": "The man broke his toe.", "choice1": "He dropped a hammer on his foot.",
     "choice2": "He got a hole in his sock.", "question": "cause", "label": 0},
    {"premise": "I tipped the bottle.", "choice1": "The liquid in the bottle froze.",
     "choice2": "The liquid in the bottle poured out.", "question": "effect", "label": 1},
    {"premise": "The sun was rising.", "choice1": "The birds began to sing.",
     "choice2": "The moon turned red at once.", "question": "effect", "label": 0},
]
WSC_ROWS = [
    {"text": "Mark told Pete many lies about himself, which Pete included in his book.",
     "target": {"span1_text": "Mark", "span2_index": 11, "span2_text": "his"}, "label": False},
    {"text": "The trophy does not fit into the suitcase because it is too large.",
     "target": {"span1_text": "The trophy", "span2_index": 9, "span2_text": "it"}, "label": True},
]


def examples(task, rows) -> list[Example]:
    return [ex for i, row in enumerate(rows) for ex in task.example(row, f"mem:{i + 1}")]


def cls_context(task, model: PromptedLM) -> ScorerContext:
    """The engine's context for CLS-FT: the task's classifier pattern, the LM trained."""
    template = task.template("classifier")
    return ScorerContext(task, get_method("cls-ft", "superglue"), model, template, "classifier", 128, 4, quiet=True)


def trained_lm(backbone) -> PromptedLM:
    return PromptedLM(backbone, train_backbone=True)


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_copa_cls_ft_reads_each_choice_on_its_own_input(load_tiny, name):
    backbone = load_tiny(name)
    torch.manual_seed(0)
    scorer = make_scorer(cls_context(Copa(), trained_lm(backbone)))
    assert isinstance(scorer, ChoiceClassifierScorer)
    exs = examples(Copa(), COPA_ROWS)
    items = scorer.train_items(exs)
    assert len(items) == len(exs)  # no mirrored copies: a choice per input makes them repeats
    assert [it.label for it in items] == [0, 1, 0]
    text = backbone.tokenizer.decode(items[1].rendered[1].input_ids)
    assert "i tipped the bottle so the liquid in the bottle poured out" in text.lower()
    assert "froze" not in text  # the other choice is not in this input

    # Evaluation scores every choice's input alone: the prediction is the argmax of the one-input logits.
    scorer.model.eval()
    with torch.no_grad():
        alone = [[classifier_logits(scorer.model, [r]).item() for r in it.rendered] for it in items]
    assert scorer.predict(exs) == [max(range(2), key=lambda c: row[c]) for row in alone]

    # The loss is the cross-entropy over each example's two choices (dropout off to compare), and it trains the
    # head and the LM.
    loss = scorer.loss(items)
    expected = torch.nn.functional.cross_entropy(torch.tensor(alone), torch.tensor([0, 1, 0]))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)
    loss.backward()
    assert scorer.model.head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.model.parameters())


def test_choice_scores_pad_examples_with_fewer_candidates():
    scores = ChoiceClassifierScorer._per_example(torch.tensor([1.0, 2.0, 5.0, 4.0, 3.0]), [2, 3])
    assert scores[0, 2] == float("-inf") and scores.argmax(dim=1).tolist() == [1, 0]


def test_wsc_cls_ft_classifies_pairs_and_trains_on_negatives(load_tiny):
    backbone = load_tiny("llama")
    torch.manual_seed(0)
    wsc = Wsc()
    scorer = make_scorer(cls_context(wsc, trained_lm(backbone)))
    assert isinstance(scorer, ClassifierScorer) and scorer.labels == [False, True]
    exs = examples(wsc, WSC_ROWS)
    assert len(wsc.train_examples(exs)) == 1  # the span scorer's positives
    items = scorer.train_items(exs)
    assert [it.label for it in items] == [0, 1]  # CLS-FT keeps the negative
    text = backbone.tokenizer.decode(items[0].rendered.input_ids)
    assert "*his*" in text and text.rstrip().endswith("his : Mark")
    predictions = scorer.predict(exs)
    assert all(isinstance(p, bool) for p in predictions)
    # The task scores a CLS-FT prediction as the label itself (a span prediction by PET's rule).
    assert wsc.score(exs, [False, True]) == {"acc": 100.0}
    assert wsc.score(exs, [True, True]) == {"acc": 50.0}
    assert wsc.score(exs, ["Pete", "the trophy"]) == {"acc": 100.0}
    for optimizer_step in range(30):  # the head can fit two examples: the loss falls
        loss = scorer.loss(items)
        if optimizer_step == 0:
            first = loss.item()
        loss.backward()
        with torch.no_grad():
            for p in scorer.model.parameters():
                if p.grad is not None:
                    p -= 0.05 * p.grad
                    p.grad = None
    assert scorer.loss(items).item() < first


def test_cls_ft_needs_a_classifier_pattern_of_the_right_shape(load_tiny):
    model = PromptedLM(load_tiny("gpt2"), train_backbone=True)
    with pytest.raises(ConfigError, match="task 'record' has no classifier pattern"):
        Record().template("classifier")
    def copa_context(pattern: str) -> ScorerContext:  # the parsed template decides, not the pattern's spelling
        return ScorerContext(Copa(), get_method("cls-ft", "superglue"), model,
                             Template.parse(pattern, allow_no_target=True), "classifier", 64, 8)

    with pytest.raises(ConfigError, match=r"\{choice\} slot"):
        make_scorer(copa_context("{premise}"))
    assert isinstance(make_scorer(copa_context("{premise} {choice:shorten}")), ChoiceClassifierScorer)
    masked = ScorerContext(Wsc(), get_method("cls-ft", "superglue"), model,
                           Template.parse("{text} [MASK]"), "classifier", 64, 8)
    with pytest.raises(ConfigError, match="CLS-FT reads no \\[MASK\\]"):
        make_scorer(masked)
