"""Training machinery: batches, log-probs, optimizer, checkpoints, distributed setup.

Must not import recipes (library code never reaches up into the recipes), nor the CLI
(slowthink.cli). Checked by tests/test_layers.py.
"""
