"""``slowthink study``: run a grid of RL arms x seeds and judge the paper's claims (Table 1).

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

config (the grid file) -> plan (run directories) -> runner (resumable) -> verdict -> report.
"""
