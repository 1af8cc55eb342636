"""Problem records, loaders, the benchmark registry and curation filters.

Must not import torch, transformers, rollout, training, recipes (data readers work without a
model), nor the CLI (slowthink.cli). Checked by tests/test_layers.py.
"""
