"""``forward_logprobs`` against a hand computation: the shift by one, the temperature and the loss mask."""

from __future__ import annotations

import math

import torch

from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.batch import build_sequence_batch
from slowthink.training.logprobs import forward_logprobs


def test_forward_logprobs_equal_a_hand_computation_token_by_token():
    model = build_model(build_tokenizer(), TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0)
    prompts, responses = [[11, 12, 13], [21]], [[14, 15], [22, 23, 24]]
    masks = [[1, 1], [1, 0, 1]]  # row 1's middle token is tool output: not trained
    batch = build_sequence_batch(prompts, responses, masks, pad_id=0)
    temperature = 0.7
    logprobs_BT, entropy_BT = forward_logprobs(model, batch.input_ids_BL, batch.attention_mask_BL, temperature, with_entropy=True)
    with torch.no_grad():
        logits_BLV = model(input_ids=batch.input_ids_BL, attention_mask=batch.attention_mask_BL).logits.double()
    # By hand: response token j of row b is predicted by the logits at the position just
    # before it (absolute position len(prompt) + j - 1), scaled by 1 / temperature.
    expected = {}
    for b, (prompt, response, mask) in enumerate(zip(prompts, responses, masks)):
        for j, token in enumerate(response):
            position = len(prompt) + j - 1
            z = [float(v) / temperature for v in logits_BLV[b, position]]
            log_norm = math.log(sum(math.exp(v - max(z)) for v in z)) + max(z)
            if mask[j]:
                expected[(b, position)] = z[token] - log_norm
    got = {(b, t): float(logprobs_BT[b, t]) for b, t in batch.loss_mask_BT.nonzero().tolist()}
    assert got.keys() == expected.keys()  # the loss mask marks exactly those targets
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-5, (key, got[key], value)
    # Entropy at a trained position, by hand from the same tempered distribution.
    z = logits_BLV[0, 2] / temperature
    p = torch.softmax(z, -1)
    assert abs(float(entropy_BT[0, 2]) - float(-(p * torch.log(p)).sum())) < 1e-5
    assert logprobs_BT.shape == batch.loss_mask_BT.shape
