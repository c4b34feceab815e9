"""Benchmarks of pinkflow-bot: `python bench/run.py` runs them all and writes docs/benchmarks.md."""
