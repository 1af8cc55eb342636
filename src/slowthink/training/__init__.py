"""Training machinery: batches, log-probs, optimizer, checkpoints, distributed setup.

Must not import recipes or the CLI (tests/test_layers.py).
"""
