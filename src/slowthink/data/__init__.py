"""Problem records, loaders, the benchmark registry and curation filters.

Must not import torch, transformers, rollout, training, recipes or the CLI (tests/test_layers.py).
"""
