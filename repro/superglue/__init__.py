"""SuperGLUE (the paper's Tables 3-5): task engine, scorers, presets and the `superglue` CLI subcommand.

Modules: `config` (SuperGLUEConfig, PRESETS), `run` (the engine and CLI), `scorers` (the scorer interface
and registry per task kind), `classify` (verbalizer scoring and CLS-FT for the classification tasks),
`table` (the paper's Table 5 layout from result files).
"""

from repro.superglue.run import register, run_superglue

__all__ = ["register", "run_superglue"]
