"""Sweeps: many runs (a paper table) expanded into cells, planned from the results on disk, run locally or on Ray."""
