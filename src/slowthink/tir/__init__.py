"""Tool-integrated reasoning data (paper section 4.4, STILL-3-TOOL).

Must not import recipes or the CLI (tests/test_layers.py).

- ``inject``: where to cut a long thought and how to splice a code prefix in (pure).
- ``filter``: which responses become training data, and why the others are dropped (pure).
- ``teacher``: the two ways of getting tool-using responses from a teacher ``Generator``:
  ask it to use code, or inject code into its own plain thought.

``slowthink distill-tir`` (``slowthink.recipes.distill_tir``) runs them over a problem file.
"""
