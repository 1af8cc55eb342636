"""Evaluation: benchmarks by name, resumable sample runs, pass@k / maj@n and the paper's monitors.

Kept import-light: the model, the engines and the checker load only when a run starts.

Must not import recipes (library code never reaches up into the recipes), nor the CLI
(slowthink.cli). Checked by tests/test_layers.py.
"""
