"""Task adapters: one module per benchmark task. An adapter knows its data format, patterns, verbalizer and
metric, and nothing of models."""
