"""Length strategies of section 4.2.1 as pure masks over a batch of rollouts.

- Question selection (QS): keep a question only when its correct responses are, on
  average, longer than its incorrect ones (L_c > L_w), so that RL does not learn that
  short answers score higher.
- Response selection (RS): within a question, when the longest correct response is
  longer than the shortest incorrect one, learn from exactly those two.
- Overlength response masking (ORM): drop responses cut by the length limit, since
  their missing answer says nothing certain about their quality.
"""

from __future__ import annotations

import torch


def question_selection_mask(correct_PG: torch.Tensor, lengths_PG: torch.Tensor) -> torch.Tensor:
    """(P,) bool: groups with both outcomes where mean correct length > mean incorrect length."""
    correct = correct_PG.bool()
    lengths = lengths_PG.float()
    num_correct = correct.sum(-1)
    num_wrong = (~correct).sum(-1)
    mean_correct = (lengths * correct).sum(-1) / num_correct.clamp(min=1)
    mean_wrong = (lengths * ~correct).sum(-1) / num_wrong.clamp(min=1)
    return (num_correct > 0) & (num_wrong > 0) & (mean_correct > mean_wrong)


def response_selection_mask(correct_PG: torch.Tensor, lengths_PG: torch.Tensor) -> torch.Tensor:
    """(P, G) bool: the longest correct and shortest incorrect response, when the former is longer."""
    correct = correct_PG.bool()
    lengths = lengths_PG.float()
    inf = torch.finfo(lengths.dtype).max
    longest_correct = torch.where(correct, lengths, -inf).argmax(-1)  # (P,)
    shortest_wrong = torch.where(~correct, lengths, inf).argmin(-1)  # (P,)
    rows = torch.arange(lengths.shape[0])
    eligible = correct.any(-1) & (~correct).any(-1)
    eligible &= lengths[rows, longest_correct] > lengths[rows, shortest_wrong]
    keep = torch.zeros_like(correct)
    keep[rows[eligible], longest_correct[eligible]] = True
    keep[rows[eligible], shortest_wrong[eligible]] = True
    return keep


def overlength_mask(finished_B: torch.Tensor) -> torch.Tensor:
    """(B,) bool: keep only responses that finished before the length limit."""
    return finished_B.bool()
