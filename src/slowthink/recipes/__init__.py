"""Recipes: plain top-to-bottom functions (rl, sft, evaluate, score, curate, demo, distill-tir).

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).
"""
