"""slowthink: train and evaluate R1-like slow-thinking reasoning models.

Importing the package pulls in nothing heavy (no torch, no vLLM); modules import
their engines themselves.

Must not import the CLI (slowthink.cli), nor a heavy engine (vLLM, wandb, FastAPI, httpx,
datasketch, math-verify) except through the module that wraps it. Checked by
tests/test_layers.py.
"""

__version__ = "0.1.0"
