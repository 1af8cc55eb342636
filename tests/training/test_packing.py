"""Packing: the same loss and gradients as unpacked batches, and real attention boundaries."""

from __future__ import annotations

import random

import pytest
import torch

from slowthink.models.modeling import load_model_and_tokenizer
from slowthink.training.batch import build_sequence_batch
from slowthink.training.logprobs import forward_logprobs
from slowthink.training.packing import pack_examples, pack_rows, rank_share


@pytest.fixture(scope="module")
def model_and_tok():
    torch.manual_seed(0)
    model, tok = load_model_and_tokenizer("tiny")
    return model.train(), tok


def examples(seed: int = 0, count: int = 6):
    rng = random.Random(seed)
    prompts = [[rng.randrange(5, 40) for _ in range(rng.randint(1, 6))] for _ in range(count)]
    responses = [[rng.randrange(5, 40) for _ in range(rng.randint(1, 12))] for _ in range(count)]
    masks = [[int(rng.random() > 0.2) for _ in r] for r in responses]
    return prompts, responses, masks


def unpacked_loss(model, prompts, responses, masks, pad_id):
    batch = build_sequence_batch(prompts, responses, masks, pad_id)
    logprobs_BT, _ = forward_logprobs(model, batch.input_ids_BL, batch.attention_mask_BL)
    return -(logprobs_BT * batch.loss_mask_BT).sum() / batch.loss_mask_BT.sum()


def packed_loss(model, prompts, responses, masks, pad_id, pack_length, with_mask=True):
    packed = pack_examples(prompts, responses, masks, pack_length, pad_id).trimmed()
    mask = packed.attention_mask() if with_mask else (packed.segment_ids_RL >= 0).long()
    positions = packed.position_ids_RL if with_mask else None
    logprobs_RT, _ = forward_logprobs(model, packed.input_ids_RL, mask, position_ids_BL=positions)
    return -(logprobs_RT * packed.loss_mask_RT).sum() / packed.loss_mask_RT.sum(), packed


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_packing_gives_the_same_loss_and_gradient_as_unpacked(model_and_tok):
    model, tok = model_and_tok
    prompts, responses, masks = examples()
    reference = unpacked_loss(model, prompts, responses, masks, tok.pad_token_id)
    packed, layout = packed_loss(model, prompts, responses, masks, tok.pad_token_id, pack_length=24)
    assert len(layout) < len(prompts)  # several examples really share rows
    assert torch.allclose(packed, reference, atol=1e-5), (packed, reference)
    assert torch.allclose(grads(model, packed), grads(model, reference), atol=1e-5)


def test_without_the_block_mask_examples_see_each_other(model_and_tok):
    model, tok = model_and_tok
    prompts, responses, masks = examples(seed=1)
    reference = unpacked_loss(model, prompts, responses, masks, tok.pad_token_id)
    leaky, _ = packed_loss(model, prompts, responses, masks, tok.pad_token_id, pack_length=40, with_mask=False)
    assert not torch.allclose(leaky, reference, atol=1e-4)


def test_layout_positions_and_loss_alignment():
    assert pack_rows([3, 4, 2, 5], pack_length=6) == [[0, 2], [1], [3]]
    with pytest.raises(ValueError, match="more than the pack length"):
        pack_rows([7], pack_length=6)
    packed = pack_examples([[1, 2], [3]], [[4, 5], [6, 7, 8]], [[1, 1], [1, 0, 1]], pack_length=10, pad_id=0)
    assert packed.input_ids_RL.tolist() == [[1, 2, 4, 5, 3, 6, 7, 8]]
    assert packed.position_ids_RL.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]]
    # Targets: 2->4? no: t predicts t+1; response tokens 4,5 at targets 1,2; 6,7,8 at targets 4,5,6.
    assert packed.loss_mask_RT.tolist() == [[0, 1, 1, 0, 1, 0, 1]]
    mask = packed.attention_mask()[0, 0]
    assert mask[4, 3] < -1e30 and mask[5, 4] == 0 and mask[3, 0] == 0 and mask[0, 1] < -1e30


def test_rank_shares_have_equal_row_counts_and_together_hold_every_row(model_and_tok):
    model, tok = model_and_tok
    prompts, responses, masks = examples(seed=3, count=7)
    packed = pack_examples(prompts, responses, masks, 20, tok.pad_token_id)
    assert len(packed) % 2 == 1  # an odd count: one rank gets an empty row
    shares = [rank_share(packed, rank, 2, tok.pad_token_id) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == (len(packed) + 1) // 2
    # Rank r holds rows r, r + 2, ...; the extra row is all padding and trains nothing.
    for rank, share in enumerate(shares):
        for i in range(len(share)):
            row = rank + 2 * i
            if row < len(packed):
                assert torch.equal(share.input_ids_RL[i], packed.input_ids_RL[row])
                assert torch.equal(share.loss_mask_RT[i], packed.loss_mask_RT[row])
    empty = shares[(len(packed)) % 2].select(slice(-1, None))
    assert (empty.segment_ids_RL == -1).all() and empty.loss_mask_RT.sum() == 0
    assert (empty.input_ids_RL == tok.pad_token_id).all()
    # The two shares' token-mean loss is the whole batch's (sums of the shares over the global count).
    total = packed.loss_mask_RT.sum()
    whole, _ = packed_loss(model, prompts, responses, masks, tok.pad_token_id, 20)
    parts = 0.0
    for share in shares:
        share = share.trimmed()
        logprobs_RT, _ = forward_logprobs(model, share.input_ids_RL, share.attention_mask(), position_ids_BL=share.position_ids_RL)
        parts = parts + -(logprobs_RT * share.loss_mask_RT).sum() / total
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-6)
    assert rank_share(packed, 0, 1, tok.pad_token_id).input_ids_RL.shape == packed.input_ids_RL.shape
