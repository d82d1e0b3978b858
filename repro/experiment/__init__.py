"""Running experiments: one run config with presets (`config`), one engine for a unit of work (`engine`: a
LAMA relation or a SuperGLUE seed), and the thin drivers `lama` and `superglue` (with `superglue_config`)."""
