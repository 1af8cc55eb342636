"""Rollout engines behind the ``Generator`` protocol (HF on CPU, vLLM, OpenAI-compatible) and the tool loop.

Must not import recipes or the CLI (tests/test_layers.py).
"""
