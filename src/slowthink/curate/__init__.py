"""``slowthink curate``: JSONL files or Hugging Face datasets in, one RL training pool out (paper section 2).

question_type (which questions a checker cannot verify) -> answer (gold the checker cannot
parse) -> dedup (exact and MinHash near duplicates) -> decontaminate (n-gram overlap with
the evaluation benchmarks) -> difficulty (pass rate of a model over k samples) -> pipeline
(streaming, counts and examples) -> report.

Must not import the CLI (slowthink.cli), nor a heavy engine (vLLM, wandb, FastAPI, httpx,
datasketch, math-verify) except through the module that wraps it. Checked by
tests/test_layers.py.
"""
