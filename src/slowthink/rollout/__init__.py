"""Rollout engines behind the ``Generator`` protocol (HF on CPU, vLLM, OpenAI-compatible) and the tool loop.

Must not import recipes (library code never reaches up into the recipes), nor the CLI
(slowthink.cli). Checked by tests/test_layers.py.
"""
