"""``slowthink study``: run a grid of RL arms x seeds and judge the paper's claims (Table 1).

config (the grid file) -> plan (run directories) -> runner (resumable) -> verdict -> report.

Must not import the CLI (slowthink.cli), nor a heavy engine (vLLM, wandb, FastAPI, httpx,
datasketch, math-verify) except through the module that wraps it. Checked by
tests/test_layers.py.
"""
