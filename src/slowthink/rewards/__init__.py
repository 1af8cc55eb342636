"""Rewards: answer extraction and checking, the paper's reward components (section 4.2.1), keyword lists.

Must not import torch, transformers, modeling, rollout, training, recipes or the CLI (tests/test_layers.py).
"""
