"""Training machinery: batches, log-probs, optimizer, checkpoints, distributed setup."""
