"""Recipes: plain top-to-bottom functions (rl, sft, evaluate, score, demo, distill-tir)."""
