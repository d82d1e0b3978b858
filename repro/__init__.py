"""Reproduction suite for P-tuning ("GPT Understands, Too", Liu et al., 2021)."""

__version__ = "0.1.0"
