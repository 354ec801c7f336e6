"""Benchmarks of the node's own cost on top of the model: scripts that print figures and ratios.

Run them from the repository root as modules, e.g. `python -m bench.ingest_bench`; see README.md.
"""
