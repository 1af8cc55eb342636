"""Monitors: what a run's rollouts show, read step by step as the paper reads its results.

Must not import torch, transformers, models, rollout, training, recipes, serve or the CLI
(tests/test_layers.py): the CLI imports them at start-up and they compute from plain numbers
and texts. They sit above ``rewards`` (they read its verdicts and count its keywords); nothing
in ``rewards``, ``sandbox``, ``data`` or ``algorithms`` imports them.

- ``metrics``: one batch's accuracy, lengths, completion ratio, keyword frequency, statuses.
- ``keywords``: the reasoning-action categories of Figure 4 and their counts.
- ``length_hacking``: length rising while accuracy stays flat (sections 4.2.2 and 5).
- ``no_signal``: a run whose advantages are all 0 from its first steps.
- ``tools``: tool calls per response, cell statuses, accuracy with and without tools.
"""
