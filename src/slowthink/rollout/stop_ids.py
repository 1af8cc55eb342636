"""Which sampled tokens could complete a stop string: a per-vocabulary mask built once.

The generic path decodes each row's text tail after every token to look for stop strings.
A stop string that first appears after token ``t`` must end inside ``t``'s text, so it
ends with the string's last character somewhere in that text. ``candidate_mask`` marks
the tokens for which that can hold; the decode loop runs the exact text check
(``HFGenerator._matched_stop``, the generic path's own) only for rows whose new token is a
candidate, so it finds the same stops at the same tokens while decoding almost never.

Tokens whose text alone is not what they add in context are kept as candidates: an empty
decode (special tokens, partial bytes), a replacement character (a UTF-8 sequence split
across tokens), and, when a stop string ends in whitespace, SentencePiece's "▁" tokens
(decoded alone they lose their leading space).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

_SPACE_MARKERS = ("\u2581", "\u0120")  # SentencePiece "▁" and byte-level BPE "Ġ"


def candidate_mask(tokenizer: Any, stops: Sequence[str], vocab_size: int) -> torch.Tensor:
    """(V,) bool: True where a token could complete one of ``stops``."""
    last_chars = {stop[-1] for stop in stops}
    ends_in_space = any(char.isspace() for char in last_chars)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    for token_id, piece in enumerate(pieces):
        text = tokenizer.decode([token_id], skip_special_tokens=True)
        mask[token_id] = (
            not text
            or "\ufffd" in text
            or any(char in text for char in last_chars)
            or (ends_in_space and isinstance(piece, str) and piece.startswith(_SPACE_MARKERS))
        )
    # Ids past the tokenizer (padded embedding rows) decode to nothing: check them exactly.
    mask[len(pieces) :] = True
    return mask


class StopMasks:
    """``candidate_mask`` per (tokenizer, stop strings), built on first use."""

    def __init__(self) -> None:
        self._masks: dict[tuple[int, tuple[str, ...], int], torch.Tensor] = {}

    def get(self, tokenizer: Any, stops: tuple[str, ...], vocab_size: int) -> torch.Tensor:
        key = (id(tokenizer), stops, vocab_size)
        if key not in self._masks:
            self._masks[key] = candidate_mask(tokenizer, stops, vocab_size)
        return self._masks[key]
