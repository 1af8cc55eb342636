"""Silence transformers' own logging and weight-loading progress bars.

Must not import torch or any slowthink module: both modeling.py and tiny.py call it, and
tiny.py must not import modeling.py (modeling.py builds the tiny model through tiny.py).
"""

from __future__ import annotations


def quiet_transformers() -> None:
    """Weight-loading progress bars and warnings would bury our own progress display."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
