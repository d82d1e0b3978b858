"""Answer kinds: how a task's answers are rendered, trained and predicted on a prompted LM. One module per
kind (classification, candidates, span, vocab), registered in `base.SCORER_MODULES`; see `base` for the
interface the engine calls."""
