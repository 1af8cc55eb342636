"""Length strategies of the paper's section 4.2.1 on hand-made groups."""

from __future__ import annotations

import torch

from slowthink.algorithms.selection import overlength_mask, question_selection_mask, response_selection_mask

# Five prompts x four rollouts: (correct, length) per rollout.
CORRECT_PG = torch.tensor(
    [
        [1, 0, 1, 0],  # correct lengths 10, 20 (mean 15) vs wrong 5, 8 (mean 6.5)
        [1, 0, 0, 0],  # correct 3 vs wrong 9, 7, 5 (mean 7)
        [1, 1, 1, 1],  # all correct: no contrast
        [0, 0, 0, 0],  # all wrong: no contrast
        [1, 0, 1, 0],  # all the same length
        [1, 1, 0, 0],  # correct 1, 10 (mean 5.5) vs wrong 5, 20 (mean 12.5)
    ]
)
LENGTHS_PG = torch.tensor(
    [
        [10, 5, 20, 8],
        [3, 9, 7, 5],
        [4, 4, 4, 4],
        [4, 4, 4, 4],
        [6, 6, 6, 6],
        [1, 10, 5, 20],
    ]
)


def test_question_selection_keeps_groups_whose_correct_answers_are_longer():
    # Only group 0 has mean correct length > mean wrong length (15 > 6.5); group 4 ties (not >).
    keep = question_selection_mask(CORRECT_PG, LENGTHS_PG)
    assert keep.dtype == torch.bool
    assert keep.tolist() == [True, False, False, False, False, False]


def test_response_selection_takes_the_longest_correct_and_shortest_wrong():
    keep = response_selection_mask(CORRECT_PG, LENGTHS_PG)
    assert keep.dtype == torch.bool and keep.shape == CORRECT_PG.shape
    assert keep.tolist() == [
        [False, True, True, False],  # longest correct 20 (index 2) > shortest wrong 5 (index 1)
        [False, False, False, False],  # longest correct 3 < shortest wrong 5
        [False, False, False, False],  # no wrong response
        [False, False, False, False],  # no correct response
        [False, False, False, False],  # 6 is not longer than 6
        [False, True, True, False],  # longest correct 10 > shortest wrong 5, though QS drops this group
    ]


def test_response_selection_picks_exactly_two_with_ties():
    correct = torch.tensor([[0, 1, 1, 0]])
    lengths = torch.tensor([[4, 9, 9, 4]])
    keep = response_selection_mask(correct, lengths)
    assert keep.sum().item() == 2
    assert keep.tolist() == [[True, True, False, False]]  # first of the tied maxima and minima


def test_float_lengths_and_bool_correctness_work_too():
    keep = question_selection_mask(torch.tensor([[True, False]]), torch.tensor([[2.5, 2.0]]))
    assert keep.tolist() == [True]
    assert response_selection_mask(torch.tensor([[True, False]]), torch.tensor([[2.5, 2.0]])).tolist() == [[True, True]]


def test_overlength_mask_keeps_finished_responses():
    finished = torch.tensor([1, 0, 1, 0])
    keep = overlength_mask(finished)
    assert keep.dtype == torch.bool and keep.tolist() == [True, False, True, False]
