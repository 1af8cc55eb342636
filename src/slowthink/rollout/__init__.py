"""Rollout engines behind the ``Generator`` protocol (HF on CPU, vLLM, OpenAI-compatible) and the tool loop."""
