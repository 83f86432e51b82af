"""Benchmarks that print ratios (never timed tests). Run them with ``python -m bench.<name>``."""
