"""Recipes: plain top-to-bottom functions (rl, sft, evaluate, score, demo, distill-tir).

Must not import the CLI (slowthink.cli), nor a heavy engine (vLLM, wandb, FastAPI, httpx,
datasketch, math-verify) except through the module that wraps it. Checked by
tests/test_layers.py.
"""
