"""Evaluation: benchmarks by name, resumable sample runs, pass@k / maj@n and the paper's monitors.

Must not import recipes or the CLI (tests/test_layers.py).

Kept import-light: the model, the engines and the checker load only when a run starts.
"""
