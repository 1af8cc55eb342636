"""The fast Qwen2/Llama decode loop against the generic HFGenerator loop and full forwards.

Greedy decoding must give the generic path's tokens, log-probs, finish reasons, stop
strings and texts; sampling draws another random stream, so its claims are checked
against a full forward pass (log-probs), the stop rule itself, and seed independence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from slowthink.models.tiny import build_tokenizer
from slowthink.rollout.fast_sampling import row_keys, sample_from_uniforms, uniforms
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.hf import HFGenerator
from slowthink.rollout.stop_ids import candidate_mask

sys.path.insert(0, str(Path(__file__).parent))
from test_hf import QUESTIONS, reference_logprobs, varied_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return varied_model(tokenizer, seed=0)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return [tokenizer.encode(f"<|user|>{q}<|assistant|>", add_special_tokens=False) for q in QUESTIONS]


def pair(model, tokenizer, **kwargs) -> tuple[HFGenerator, HFGenerator]:
    fast, generic = HFGenerator(model, tokenizer, **kwargs), HFGenerator(model, tokenizer, fast=False, **kwargs)
    assert fast.generic_reason is None and fast._fast_loop is not None
    assert generic.generic_reason == "fast=False" and generic._fast_loop is None
    return fast, generic


def assert_same(fast_out, generic_out) -> None:
    assert len(fast_out) == len(generic_out)
    for a, b in zip(fast_out, generic_out):
        assert a.token_ids == b.token_ids
        assert (a.prompt_index, a.finish_reason, a.stop_string, a.text) == (b.prompt_index, b.finish_reason, b.stop_string, b.text)
        assert a.loss_mask == b.loss_mask and a.num_model_tokens == b.num_model_tokens and a.finished == b.finished
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def llama_model(tokenizer):
    """A Llama with grouped-query attention (4 query heads over 2 KV heads), weights at std 0.2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, 0.2)
    return model


# ------------------------------------------------------------------ greedy: identical to the generic path


@pytest.mark.parametrize("stop", [(), ("1",), ("+3", "</think>", "never-seen")])
def test_greedy_equals_the_generic_path_token_for_token(model, tokenizer, prompts, stop):
    fast, generic = pair(model, tokenizer, batch_size=5)  # chunks of 5 over 8 jobs: 2 batches
    params = SamplingParams(temperature=0, max_new_tokens=30, stop=stop, n=2)
    fast_out, generic_out = fast.generate(prompts, params), generic.generate(prompts, params)
    assert_same(fast_out, generic_out)
    if stop[:1] == ("1",):  # some rows end early on the stop string, others run to the limit
        assert {c.finish_reason for c in fast_out} == {"stop", "length"}


def test_eos_ends_rows_identically_and_the_others_run_on(model, tokenizer, prompts):
    fast, generic = pair(model, tokenizer)
    free = generic.generate(prompts, SamplingParams(temperature=0, max_new_tokens=24))
    # Make a token that greedy decoding emits early in one row an end-of-sequence token.
    eos_token = free[1].token_ids[3]
    fast.eos_ids = generic.eos_ids = {tokenizer.eos_token_id, eos_token}
    params = SamplingParams(temperature=0, max_new_tokens=24, stop=("never-seen",))
    fast_out, generic_out = fast.generate(prompts, params), generic.generate(prompts, params)
    assert_same(fast_out, generic_out)
    assert fast_out[1].finish_reason == "stop" and fast_out[1].token_ids[-1] == eos_token
    assert fast_out[1].stop_string is None and len(fast_out[1].token_ids) <= 4
    assert any(c.finish_reason == "length" for c in fast_out)


def test_llama_with_grouped_query_attention_equals_the_generic_path(tokenizer, prompts):
    model = llama_model(tokenizer)
    fast, generic = pair(model, tokenizer)
    params = SamplingParams(temperature=0, max_new_tokens=20, stop=("7",), n=2)
    assert_same(fast.generate(prompts, params), generic.generate(prompts, params))


def test_updated_weights_are_used(tokenizer, prompts):
    model = varied_model(tokenizer, seed=1)
    fast, generic = pair(model, tokenizer)
    params = SamplingParams(temperature=0, max_new_tokens=12)
    before = fast.generate(prompts, params)
    with torch.no_grad():  # an optimizer step in place, as the trainer does between rollouts
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    after = fast.generate(prompts, params)
    assert [c.token_ids for c in after] != [c.token_ids for c in before]
    assert_same(after, generic.generate(prompts, params))


def test_other_models_take_the_generic_path(tokenizer, prompts):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=128)).eval()
    generator = HFGenerator(model, tokenizer)
    assert generator._fast_loop is None and "gpt2" in generator.generic_reason
    (completion,) = generator.generate(prompts[:1], SamplingParams(temperature=0, max_new_tokens=5))
    assert len(completion.token_ids) == 5


# ------------------------------------------------------------------ sampling


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampling_logprobs_match_a_full_forward_pass(model, tokenizer, prompts, temperature, top_p):
    fast = HFGenerator(model, tokenizer)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=24, n=3, seed=1, stop=("9",))
    completions = fast.generate(prompts, params)
    for completion in completions:
        expected = reference_logprobs(model, prompts[completion.prompt_index], completion.token_ids, temperature)
        assert len(completion.logprobs) == len(completion.token_ids)
        assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4)
    assert len({tuple(c.token_ids) for c in completions[:3]}) > 1  # n samples are not copies


def test_sampled_rows_stop_exactly_where_the_stop_rule_says(model, tokenizer, prompts):
    stops = ("3", "+1")
    completions = HFGenerator(model, tokenizer).generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=20, n=4, seed=2, stop=stops))
    assert {c.finish_reason for c in completions} == {"stop", "length"}
    for completion in completions:
        text, before = completion.text, tokenizer.decode(completion.token_ids[:-1], skip_special_tokens=True)
        assert not any(s in before for s in stops)  # nothing stopped it earlier
        if completion.finish_reason == "stop" and completion.stop_string is None:
            assert completion.token_ids[-1] == tokenizer.eos_token_id  # ended on EOS
        elif completion.finish_reason == "stop":
            assert completion.stop_string in text
        else:
            assert len(completion.token_ids) == 20 and completion.stop_string is None
            assert not any(s in text for s in stops)


def test_a_shared_seed_is_reproducible_and_independent_of_batch_size(model, tokenizer, prompts):
    params = SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seed=7, stop=("5",))
    a = HFGenerator(model, tokenizer).generate(prompts, params)
    b = HFGenerator(model, tokenizer, batch_size=3).generate(prompts, params)
    c = HFGenerator(model, tokenizer).generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seed=8))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_per_completion_seeds_do_not_depend_on_the_batch(model, tokenizer, prompts):
    seeds = (11, 12, 21, 22, 31, 32, 41, 42)
    params = SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seeds=seeds, stop=("2",))
    together = HFGenerator(model, tokenizer, batch_size=3).generate(prompts, params)
    alone = HFGenerator(model, tokenizer).generate(prompts[2:3], SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seeds=(31, 32), stop=("2",)))
    assert [c.token_ids for c in together[4:6]] == [c.token_ids for c in alone]
    assert together[4].token_ids != together[5].token_ids
    with pytest.raises(ValueError, match="2 seeds for 8 completions"):
        HFGenerator(model, tokenizer).generate(prompts, SamplingParams(n=2, seeds=(1, 2)))


def test_inverse_cdf_sampling_follows_the_truncated_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2])
    grid = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000  # evenly spread uniforms
    logits = probs.log().repeat(4000, 1)
    tokens, logprobs = sample_from_uniforms(logits, 1.0, 1.0, grid)
    assert torch.allclose(torch.bincount(tokens, minlength=3) / 4000.0, probs, atol=1e-3)
    assert torch.allclose(logprobs, probs.log()[tokens], atol=1e-6)
    # top_p = 0.7 drops the third token; the rest are renormalised; log-probs stay untruncated.
    tokens, logprobs = sample_from_uniforms(logits, 1.0, 0.7, grid)
    assert torch.allclose(torch.bincount(tokens, minlength=3) / 4000.0, torch.tensor([0.625, 0.375, 0.0]), atol=1e-3)
    assert torch.allclose(logprobs, probs.log()[tokens], atol=1e-6)


def test_uniforms_are_uniform_and_per_row_streams_differ():
    keys = row_keys(20000, 3, None)
    table = uniforms(keys, 2)
    assert table.shape == (20000, 2) and ((table >= 0) & (table < 1)).all()
    histogram = torch.histc(table[:, 0], bins=10, min=0, max=1) / len(table)
    assert torch.allclose(histogram, torch.full((10,), 0.1), atol=0.01)
    assert (table[:, 0] != table[:, 1]).float().mean() > 0.99  # steps differ
    assert torch.equal(uniforms(keys[:7], 5)[:, :2], table[:7])  # a row's stream is its own
    assert torch.equal(row_keys(5, None, [1, 2, 3, 4, 5])[2:3], row_keys(1, None, [3]))


def test_stop_candidates_cover_tokens_ending_a_stop_string(tokenizer):
    mask = candidate_mask(tokenizer, ("</think>", "+1"), len(tokenizer))
    assert mask[tokenizer.convert_tokens_to_ids("</think>")]  # the whole stop string in one token
    assert mask[tokenizer.convert_tokens_to_ids("1")] and mask[tokenizer.convert_tokens_to_ids(">")]
    assert not mask[tokenizer.convert_tokens_to_ids("7")] and not mask[tokenizer.convert_tokens_to_ids("+")]
    assert mask[tokenizer.eos_token_id]  # decodes to nothing alone: checked exactly


@pytest.mark.parametrize("fast", [True, False])
def test_rl_config_switch_selects_the_path(model, tokenizer, fast):
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.recipes.rl_engine import build_generator

    engine = build_generator(RLConfig.model_validate({"rollout": {"fast_generation": fast}}), model, tokenizer)
    assert (engine._fast_loop is not None) == fast


def test_no_row_and_step_share_a_degenerate_stream():
    """Keys and step codes once came from one hash, so row 2t+1 of seed 0 drew u = 0 at step t
    (hash(j) ^ hash(j) = 0): the first token, EOS in a BPE vocabulary, 25x too often."""
    for seed in range(3):
        table = uniforms(row_keys(256, seed, None), 256)
        assert int((table < 2**-20).sum()) <= 2  # expected 0.06 of 65,536 draws
        histogram = torch.histc(table.flatten(), bins=16, min=0, max=1) / table.numel()
        assert torch.allclose(histogram, torch.full((16,), 1 / 16), atol=0.003)


def test_16_bit_models_take_the_generic_path(tokenizer, prompts):
    # bf16 rounding in the fused ops made greedy decoding drift from the generic loop's at
    # token 14 of this model: the fast path is kept to float32, where it is exact.
    model = varied_model(tokenizer, seed=0).to(torch.bfloat16)
    generator = HFGenerator(model, tokenizer)
    assert generator._fast_loop is None and "bfloat16" in generator.generic_reason
    # RL's default rollout.generation_dtype=float32 keeps a 16-bit model on the generic loop too.
    assert HFGenerator(model, tokenizer, dtype="float32")._fast_loop is None
    params = SamplingParams(temperature=0, max_new_tokens=20)
    assert_same(generator.generate(prompts, params), HFGenerator(model, tokenizer, fast=False).generate(prompts, params))


# ------------------------------------------------------------------ bfloat16 decoding


def test_bfloat16_sampling_logprobs_are_as_close_to_float32_as_transformers_own_bfloat16(model, tokenizer, prompts):
    """bfloat16 rounds (8 bits of mantissa), so the fast path's log-probs are held to the
    error of transformers' own forward with the weights cast to bfloat16, on the same tokens."""
    import copy

    generator = HFGenerator(model, tokenizer, dtype="bfloat16")
    assert generator._fast_loop is not None and generator._fast_loop.dtype == torch.bfloat16
    completions = generator.generate(prompts, SamplingParams(temperature=0.8, max_new_tokens=24, n=3, seed=1))
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    ours, theirs = [], []
    for c in completions:
        exact = reference_logprobs(model, prompts[c.prompt_index], c.token_ids, 0.8)
        ours.append((torch.tensor(c.logprobs) - exact).abs())
        theirs.append((reference_logprobs(model_bf16, prompts[c.prompt_index], c.token_ids, 0.8) - exact).abs())
    ours, theirs = torch.cat(ours), torch.cat(theirs)
    assert 0 < ours.mean() <= 1.5 * theirs.mean()  # it did compute in bfloat16, no worse than transformers'
    assert ours.max() < 0.5
    assert next(model.parameters()).dtype == torch.float32  # the trainer's weights are untouched


def test_bfloat16_greedy_picks_float32s_choice_or_a_near_tie(model, tokenizer, prompts):
    from test_hf import teacher_forced_argmax

    completions = HFGenerator(model, tokenizer, dtype="bfloat16").generate(prompts, SamplingParams(temperature=0, max_new_tokens=30))
    agree, total = 0, 0
    for completion in completions:
        prompt = prompts[completion.prompt_index]
        expected = teacher_forced_argmax(model, prompt, completion.token_ids)
        agree += sum(a == b for a, b in zip(completion.token_ids, expected))
        total += len(expected)
        # Where they differ, float32 itself rates bfloat16's token within a rounding margin of its best.
        float32 = reference_logprobs(model, prompt, completion.token_ids, 1.0)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + completion.token_ids])).logits[0, len(prompt) - 1 : -1]
        best = torch.log_softmax(logits, dim=-1).max(-1).values
        assert (best - float32).max() < 0.1
    assert agree / total > 0.9


def test_bfloat16_decoding_follows_weight_updates(tokenizer, prompts):
    model = varied_model(tokenizer, seed=1)
    generator = HFGenerator(model, tokenizer, dtype="bfloat16")
    params = SamplingParams(temperature=0, max_new_tokens=12)
    before = generator.generate(prompts, params)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    assert [c.token_ids for c in generator.generate(prompts, params)] != [c.token_ids for c in before]


def test_bfloat16_generation_is_asked_for_where_it_can_run(model, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    from slowthink.config import ConfigError
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.recipes.rl_engine import build_generator

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=128))
    with pytest.raises(ValueError, match="bfloat16 generation needs the fast path.*gpt2"):
        HFGenerator(gpt2, tokenizer, dtype="bfloat16")
    with pytest.raises(ValueError, match="needs the fast path.*fast=False"):
        HFGenerator(model, tokenizer, fast=False, dtype="bfloat16")
    with pytest.raises(ValueError, match="must be float32 or bfloat16, got 'float16'"):
        HFGenerator(model, tokenizer, dtype="float16")
    with pytest.raises((ValueError, ConfigError), match="generation_dtype applies to the hf backend's fast path"):
        RLConfig.model_validate({"rollout": {"generation_dtype": "bfloat16", "fast_generation": False}})
    engine = build_generator(RLConfig.model_validate({"rollout": {"generation_dtype": "bfloat16"}}), model, tokenizer)
    assert engine._fast_loop.dtype == torch.bfloat16
    assert build_generator(RLConfig.model_validate({}), model, tokenizer)._fast_loop.dtype == torch.float32


def test_a_bfloat16_model_takes_the_fast_path_when_bfloat16_is_asked_for(tokenizer, prompts):
    model = varied_model(tokenizer, seed=0).to(torch.bfloat16)
    generator = HFGenerator(model, tokenizer, dtype="bfloat16")
    assert generator._fast_loop is not None
    (completion, *_) = generator.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=10, seed=0))
    assert len(completion.token_ids) >= 1


# ------------------------------------------------------------------ completions handed over as they finish


@pytest.mark.parametrize("fast", [True, False])
def test_each_completion_is_handed_over_once_and_early_rows_before_the_rest(model, tokenizer, prompts, fast):
    generator = HFGenerator(model, tokenizer, batch_size=5, fast=fast)
    free = generator.generate(prompts, SamplingParams(temperature=0, max_new_tokens=24))
    generator.eos_ids = {tokenizer.eos_token_id, free[1].token_ids[3]}  # prompt 1's rows end at token 4
    calls: list[list[tuple[int, object]]] = []
    params = SamplingParams(temperature=1.0, max_new_tokens=24, n=2, seed=3)
    completions = generator.generate(prompts, params, on_finished=calls.append)
    handed = [pair for call in calls for pair in call]
    assert sorted(p for p, _ in handed) == list(range(len(completions)))  # each position once
    assert all(completions[p] is c for p, c in handed)  # the very objects returned
    assert [c.token_ids for c in completions] == [c.token_ids for c in generator.generate(prompts, params)]  # no change to what is sampled
    if fast:  # rows that end early are handed over while the others still decode
        first = calls[0]
        assert all(c.finish_reason == "stop" for _, c in first)
        assert max(len(c.token_ids) for _, c in first) < max(len(c.token_ids) for c in completions)
    else:  # the generic loop hands over a batch at a time (batches of 5)
        assert [len(call) for call in calls] == [5, 3]  # 4 prompts x 2


def test_bf16_instructions_are_read_from_the_cpu_flags():
    from slowthink.rollout.fast_qwen2 import cpu_has_bf16

    assert cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 fma\n") is True
    assert cpu_has_bf16("flags\t\t: fpu amx_bf16 amx_tile\n") is True
    assert cpu_has_bf16("flags\t\t: fpu sse avx2 avx512f\nbugs\t\t: avx512_bf16-looking-bug\n") is False
    assert cpu_has_bf16("") is False
    assert cpu_has_bf16() in (True, False, None)  # this machine's own answer, whatever it is
