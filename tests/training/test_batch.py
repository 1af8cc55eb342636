"""SequenceBatch: target alignment (position t holds token t + 1), trimming and splits."""

from __future__ import annotations

import pytest
import torch

from slowthink.training.batch import build_sequence_batch, split_batch

PAD = 0


def two_rows():
    # Row 0: prompt [1, 2, 3], response [4, 5]; row 1: prompt [6], response [7, 8, 9] whose
    # middle token is tool output (mask 0).
    return build_sequence_batch(
        prompt_ids=[[1, 2, 3], [6]],
        response_ids=[[4, 5], [7, 8, 9]],
        response_loss_masks=[[1, 1], [1, 0, 1]],
        pad_id=PAD,
        advantages=[0.5, -1.0],
        old_logprobs=[[-0.1, -0.2], [-0.3, -0.4, -0.5]],
    )


def test_tokens_are_joined_and_right_padded():
    batch = two_rows()
    assert batch.input_ids_BL.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, PAD]]
    assert batch.attention_mask_BL.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch.advantages_B.tolist() == [0.5, -1.0]
    assert len(batch) == 2


def test_loss_mask_marks_exactly_the_response_targets_shifted_by_one():
    batch = two_rows()
    # Targets of row 0 are tokens [2, 3, 4, 5]: the response is targets 2 and 3.
    # Targets of row 1 are [7, 8, 9, PAD]: 7 and 9 are model tokens, 8 is tool output.
    assert batch.loss_mask_BT.tolist() == [[0, 0, 1, 1], [1, 0, 1, 0]]
    targets = batch.input_ids_BL[:, 1:]
    assert targets[batch.loss_mask_BT.bool()].tolist() == [4, 5, 7, 9]
    assert batch.num_tokens == 4
    # Old log-probs sit at the same target positions (0 elsewhere, also on masked tool tokens).
    assert torch.allclose(batch.old_logprobs_BT, torch.tensor([[0, 0, -0.1, -0.2], [-0.3, -0.4, -0.5, 0]]))
    assert batch.ref_logprobs_BT.shape == (2, 4) and not batch.ref_logprobs_BT.any()


def test_alignment_matches_next_token_logits():
    """The log-prob a model gives target t comes from logits at position t: check with a
    'model' whose logits at position t put all mass on input token t + 1."""
    batch = two_rows()
    vocab = 10
    next_tokens = torch.cat([batch.input_ids_BL[:, 1:], torch.zeros(2, 1, dtype=torch.long)], dim=1)
    logits_BLV = torch.nn.functional.one_hot(next_tokens, vocab).float() * 50.0
    logprobs_BT = torch.log_softmax(logits_BLV[:, :-1], -1).gather(-1, batch.input_ids_BL[:, 1:, None]).squeeze(-1)
    assert (logprobs_BT[batch.loss_mask_BT.bool()] > -1e-6).all()


def test_defaults_without_advantages_or_old_logprobs():
    batch = build_sequence_batch([[1, 2]], [[3]], [[1]], pad_id=PAD)
    assert batch.advantages_B.tolist() == [0.0]
    assert batch.loss_mask_BT.tolist() == [[0, 1]]
    assert not batch.old_logprobs_BT.any()


def test_trimmed_drops_all_padding_columns():
    batch = build_sequence_batch([[1, 2, 3, 4, 5, 6], [1], [2, 3]], [[7, 8], [9], [4]], [[1, 1], [1], [1]], pad_id=PAD)
    assert batch.input_ids_BL.shape == (3, 8)
    short = batch.select(slice(1, 3)).trimmed()
    assert short.input_ids_BL.tolist() == [[1, 9, PAD], [2, 3, 4]]
    assert short.attention_mask_BL.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert short.loss_mask_BT.tolist() == [[1, 0], [0, 1]]
    assert short.old_logprobs_BT.shape == short.ref_logprobs_BT.shape == (2, 2)
    # A full-length row keeps everything.
    assert batch.trimmed().input_ids_BL.shape == (3, 8)
    assert batch.trimmed().loss_mask_BT.tolist() == batch.loss_mask_BT.tolist()


def test_select_and_with_keep_rows_consistent():
    batch = two_rows()
    picked = batch.select(torch.tensor([1]))
    assert picked.input_ids_BL.tolist() == [[6, 7, 8, 9, PAD]]
    assert picked.advantages_B.tolist() == [-1.0]
    changed = batch.with_(advantages_B=torch.tensor([2.0, 3.0]))
    assert changed.advantages_B.tolist() == [2.0, 3.0] and batch.advantages_B.tolist() == [0.5, -1.0]


def test_split_sizes_and_order():
    batch = build_sequence_batch([[i + 1] for i in range(5)], [[9]] * 5, [[1]] * 5, pad_id=PAD, advantages=[0, 1, 2, 3, 4])
    parts = split_batch(batch, 2)
    assert [len(p) for p in parts] == [2, 2, 1]
    assert torch.cat([p.advantages_B for p in parts]).tolist() == [0, 1, 2, 3, 4]
    assert [len(p) for p in split_batch(batch, 5)] == [5]
    assert [len(p) for p in split_batch(batch, 8)] == [5]


def test_bad_rows_are_errors():
    with pytest.raises(ValueError, match="sequence 1: empty prompt"):
        build_sequence_batch([[1], []], [[2], [3]], [[1], [1]], pad_id=PAD)
    with pytest.raises(ValueError, match="sequence 0: 2 response tokens but 1 loss-mask entries"):
        build_sequence_batch([[1]], [[2, 3]], [[1]], pad_id=PAD)
