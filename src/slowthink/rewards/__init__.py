"""Rewards: answer extraction and checking, the paper's reward components (section 4.2.1), keyword lists.

Must not import torch, transformers, modeling, rollout, training, recipes (the checker runs
in worker processes without the ML stack), nor the CLI (slowthink.cli). Checked by
tests/test_layers.py.
"""
