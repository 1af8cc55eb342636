"""slowthink: train and evaluate R1-like slow-thinking reasoning models.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

Importing the package pulls in nothing heavy (no torch, no vLLM); modules import
their engines themselves.
"""

__version__ = "0.1.0"
