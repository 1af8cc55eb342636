"""``slowthink curate``: JSONL files or Hugging Face datasets in, one RL training pool out (paper section 2).

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

question_type (which questions a checker cannot verify) -> answer (gold the checker cannot
parse) -> dedup (exact and MinHash near duplicates) -> decontaminate (n-gram overlap with
the evaluation benchmarks) -> difficulty (pass rate of a model over k samples) -> pipeline
(streaming, counts and examples) -> report.
"""
