"""Log-probs and entropy in chunks over the sequence equal the unchunked computation.

Tolerance: float32 throughout; chunking only changes the order of float operations, so
values agree to 1e-5 absolute and gradients to 1e-5 (measured differences are ~1e-7).
"""

from __future__ import annotations

import copy

import pytest
import torch

from slowthink.models.modeling import MemoryPlan, memory_plan, set_memory_plan
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.logprobs import chunked_logprobs, final_hidden_states, forward_logprobs

SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
TOL = dict(rtol=0, atol=1e-5)


def _model():
    return build_model(build_tokenizer(), SPEC, seed=0)


def _inputs(rows: int = 3, length: int = 11):
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(10, 100, (rows, length), generator=generator)
    attention = torch.ones_like(input_ids)
    attention[1, :4] = 0  # left padding, as the rollouts have
    loss_mask = torch.ones(rows, length - 1)
    loss_mask[1, :4] = 0
    loss_mask[2, 5:7] = 0  # tool-output tokens
    return input_ids, attention, loss_mask


def _loss_and_grads(model, plan: MemoryPlan, temperature: float):
    input_ids, attention, loss_mask = _inputs()
    model.zero_grad(set_to_none=True)
    logprobs, entropy = forward_logprobs(model, input_ids, attention, temperature, with_entropy=True, plan=plan)
    # A loss that reaches every value: weighted log-probs plus an entropy bonus, masked.
    weights = torch.linspace(-1, 1, logprobs.numel()).view_as(logprobs)
    loss = ((weights * logprobs - 0.1 * entropy) * loss_mask).sum() / loss_mask.sum()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return logprobs.detach(), entropy.detach(), grads


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_equals_unchunked_values_and_gradients(chunk, temperature):
    model = _model()
    ref_lp, ref_ent, ref_grads = _loss_and_grads(model, MemoryPlan(logprob_chunk_size=0), temperature)
    lp, ent, grads = _loss_and_grads(model, MemoryPlan(logprob_chunk_size=chunk), temperature)
    torch.testing.assert_close(lp, ref_lp, **TOL)
    torch.testing.assert_close(ent, ref_ent, **TOL)
    assert grads.keys() == ref_grads.keys() and "model.embed_tokens.weight" in grads
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **TOL, msg=name)


def test_temperature_changes_the_values():
    model = _model()
    input_ids, attention, _ = _inputs()
    with torch.no_grad():
        hot, _ = forward_logprobs(model, input_ids, attention, 1.0, plan=MemoryPlan(logprob_chunk_size=5))
        cool, _ = forward_logprobs(model, input_ids, attention, 0.5, plan=MemoryPlan(logprob_chunk_size=5))
    assert (hot - cool).abs().max() > 1e-3


def test_final_hidden_states_times_the_head_are_the_logits():
    model = _model()
    input_ids, attention, _ = _inputs()
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        hidden, head = final_hidden_states(model, input_ids, attention)
    torch.testing.assert_close(head(hidden), logits, **TOL)


def test_no_full_logits_tensor_is_made(monkeypatch):
    """Chunked: the largest tensor the head makes has chunk x V elements, not B x T x V."""
    model = _model()
    input_ids, attention, _ = _inputs(rows=3, length=40)
    vocab = model.config.vocab_size
    largest = []
    real_linear = torch.nn.functional.linear

    def spy(x, weight, bias=None):
        out = real_linear(x, weight, bias)
        if out.shape[-1] == vocab:
            largest.append(out.numel())
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    logprobs, _ = forward_logprobs(model, input_ids, attention, plan=MemoryPlan(logprob_chunk_size=8))
    logprobs.sum().backward()
    assert largest and max(largest) <= 8 * vocab  # every head call, forward and recomputation alike
    largest.clear()
    forward_logprobs(model, input_ids, attention, plan=MemoryPlan(logprob_chunk_size=0))
    assert max(largest) == 3 * 40 * vocab


def test_chunked_logprobs_with_a_bias_and_empty_input():
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 5, 4, generator=generator, requires_grad=True)
    weight, bias = torch.randn(9, 4, generator=generator), torch.randn(9, generator=generator)
    targets = torch.randint(0, 9, (2, 5), generator=generator)
    logits = hidden @ weight.T + bias
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    got, _ = chunked_logprobs(hidden, weight, bias, targets, 0.7, chunk_size=3, with_entropy=False)
    torch.testing.assert_close(got, expected, **TOL)
    empty, ent = chunked_logprobs(hidden[:, :0], weight, bias, targets[:, :0], 1.0, 3, with_entropy=True)
    assert empty.shape == (2, 0) and ent.shape == (2, 0)


def test_gradient_checkpointing_gives_the_same_gradients():
    base = _model()
    _, _, plain = _loss_and_grads(copy.deepcopy(base), MemoryPlan(logprob_chunk_size=4), 1.0)
    checkpointed = set_memory_plan(copy.deepcopy(base).eval(), MemoryPlan(logprob_chunk_size=4, gradient_checkpointing=True))
    _, _, grads = _loss_and_grads(checkpointed, memory_plan(checkpointed), 1.0)
    assert not checkpointed.training  # the RL model stays in eval mode between updates
    for name in plain:
        torch.testing.assert_close(grads[name], plain[name], **TOL, msg=name)


def test_gradient_checkpointing_recomputes_the_layers():
    model = set_memory_plan(_model(), MemoryPlan(gradient_checkpointing=True))
    calls = []
    # (the recomputation stops once it has what the backward needs, so watch an early part)
    model.model.layers[0].input_layernorm.register_forward_hook(lambda *_: calls.append(1))
    input_ids, attention, _ = _inputs()
    logprobs, _ = forward_logprobs(model, input_ids, attention)
    logprobs.sum().backward()
    assert len(calls) == 2  # forward, then the recomputation in the backward


def test_bf16_autocast_is_close_to_float32():
    model = _model()
    input_ids, attention, _ = _inputs()
    with torch.no_grad():
        full, _ = forward_logprobs(model, input_ids, attention, plan=MemoryPlan(logprob_chunk_size=4))
        mixed, _ = forward_logprobs(model, input_ids, attention, plan=MemoryPlan(logprob_chunk_size=4, autocast="bfloat16"))
    assert mixed.dtype == torch.float32
    assert 0 < (mixed - full).abs().max() < 0.1  # bf16 has ~3 significant digits


def test_a_negative_chunk_size_is_refused():
    with pytest.raises(ValueError, match="logprob_chunk_size"):
        set_memory_plan(_model(), MemoryPlan(logprob_chunk_size=-1))


def test_chunked_gradients_under_bf16_autocast_match_unchunked():
    """Both compute the head in bf16; chunked takes its gradient in float32, so they agree to bf16 precision."""
    model = _model()
    _, _, plain = _loss_and_grads(model, MemoryPlan(logprob_chunk_size=0, autocast="bfloat16"), 1.0)
    _, _, chunked = _loss_and_grads(model, MemoryPlan(logprob_chunk_size=4, autocast="bfloat16"), 1.0)
    for name in plain:
        scale = plain[name].abs().max()
        assert (chunked[name] - plain[name]).abs().max() <= 0.02 * scale + 1e-6, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_chunked_equals_unchunked_on_cuda_with_bf16_autocast_and_checkpointing():
    model = set_memory_plan(_model().cuda(), MemoryPlan(gradient_checkpointing=True))
    input_ids, attention, loss_mask = (t.cuda() for t in _inputs())
    results = []
    for chunk in (0, 4):
        model.zero_grad(set_to_none=True)
        plan = MemoryPlan(logprob_chunk_size=chunk, gradient_checkpointing=True, autocast="bfloat16")
        logprobs, entropy = forward_logprobs(model, input_ids, attention, 0.7, with_entropy=True, plan=plan)
        (((logprobs - 0.1 * entropy) * loss_mask).sum() / loss_mask.sum()).backward()
        results.append((logprobs.detach(), model.lm_head.weight.grad.detach().clone()))
    (plain, plain_grad), (chunked, chunked_grad) = results
    torch.testing.assert_close(chunked, plain, rtol=0, atol=2e-2)  # bf16 matmuls either way
    assert (chunked_grad - plain_grad).abs().max() <= 0.02 * plain_grad.abs().max()


def test_the_backward_keeps_no_logits():
    """Chunked, no tensor saved for the backward is as large as the B x T x V logits; unchunked, some are."""
    model = _model()
    input_ids, attention, _ = _inputs(rows=3, length=40)
    logits_size = 3 * 39 * model.config.vocab_size
    for chunk in (8, 0):
        sizes: list[int] = []

        def pack(tensor, sizes=sizes):
            sizes.append(tensor.numel())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            forward_logprobs(model, input_ids, attention, 0.7, with_entropy=True, plan=MemoryPlan(logprob_chunk_size=chunk))
        if chunk:
            assert max(sizes) < logits_size
        else:
            assert max(sizes) >= logits_size  # the plain path keeps B x T x V tensors
