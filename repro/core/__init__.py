"""The model side of the suite, task-agnostic: templates (`template`), batching (`batch`), backbones with
their kind (`backbone`), the prompted LM (`model`), the training loop (`training`) and `inference`, the one
module through which every score is read from the LM."""
