"""HFGenerator against full forward passes of the same tiny Qwen2 model (random weights).

Every claim is checked by recomputing it without the KV cache: greedy tokens are the
argmax of a teacher-forced forward pass, returned log-probs are log_softmax(logits / T)
of that pass, and left padding changes nothing.
"""

from __future__ import annotations

import pytest
import torch

from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.hf import HFGenerator, sample_next_token

torch.set_num_threads(1)

SPEC = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
QUESTIONS = ["1+2", "964+494+876", "7", "12+345+6789+0"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def varied_model(tokenizer, seed: int):
    """The tiny architecture with weights drawn at std 0.2: the default init (std 0.02) with
    tied embeddings just repeats the last prompt token, which would make every check trivial."""
    model = build_model(tokenizer, SPEC, seed=seed).eval()
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=rng) * 0.2)
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return varied_model(tokenizer, seed=0)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return [tokenizer.encode(f"<|user|>{q}<|assistant|>", add_special_tokens=False) for q in QUESTIONS]


def reference_logprobs(model, prompt: list[int], tokens: list[int], temperature: float) -> torch.Tensor:
    """log_softmax(logits / T) of each generated token from one uncached, unpadded forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits / (temperature or 1.0), dim=-1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)


def teacher_forced_argmax(model, prompt: list[int], tokens: list[int]) -> list[int]:
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1]
    return logits.argmax(-1).tolist()


def greedy(max_new_tokens: int = 16, **kwargs) -> SamplingParams:
    return SamplingParams(temperature=0, max_new_tokens=max_new_tokens, **kwargs)


# ------------------------------------------------------------------ greedy decoding


def test_greedy_is_the_argmax_of_a_full_forward_pass_and_deterministic(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    first = generator.generate(prompts, greedy(20))
    second = generator.generate(prompts, greedy(20))
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    for prompt, completion in zip(prompts, first):
        assert len(completion.token_ids) > 0
        assert completion.token_ids == teacher_forced_argmax(model, prompt, completion.token_ids)
        # Greedy log-probs are reported at T = 1.
        expected = reference_logprobs(model, prompt, completion.token_ids, 1.0)
        assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4)


def test_left_padding_gives_the_same_result_as_one_prompt_at_a_time(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)  # really different lengths
    batched = generator.generate(prompts, greedy(20))
    for index, prompt in enumerate(prompts):
        (alone,) = generator.generate([prompt], greedy(20))
        assert batched[index].token_ids == alone.token_ids
        assert torch.allclose(torch.tensor(batched[index].logprobs), torch.tensor(alone.logprobs), atol=1e-4)
        assert batched[index].prompt_index == index


def test_generation_batches_smaller_than_the_job_list(model, tokenizer, prompts):
    whole = HFGenerator(model, tokenizer, batch_size=64).generate(prompts, greedy(12, n=2))
    chunked = HFGenerator(model, tokenizer, batch_size=3).generate(prompts, greedy(12, n=2))
    assert [c.token_ids for c in chunked] == [c.token_ids for c in whole]
    assert [c.prompt_index for c in chunked] == [0, 0, 1, 1, 2, 2, 3, 3]


# ------------------------------------------------------------------ sampling log-probs


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_a_full_forward_pass(model, tokenizer, prompts, temperature):
    generator = HFGenerator(model, tokenizer)
    completions = generator.generate(prompts[:2], SamplingParams(temperature=temperature, max_new_tokens=24, n=3, seed=1))
    assert [c.prompt_index for c in completions] == [0, 0, 0, 1, 1, 1]
    for completion in completions:
        prompt = prompts[completion.prompt_index]
        expected = reference_logprobs(model, prompt, completion.token_ids, temperature)
        assert len(completion.logprobs) == len(completion.token_ids)
        assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4)
    # n samples of one prompt are not copies of each other.
    assert len({tuple(c.token_ids) for c in completions[:3]}) > 1


def test_seeded_sampling_is_reproducible(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    params = SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seed=7)
    a = generator.generate(prompts, params)
    b = generator.generate(prompts, params)
    c = generator.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seed=8))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.logprobs for x in a] == [x.logprobs for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_per_completion_seeds_make_a_completion_independent_of_its_batch(model, tokenizer, prompts):
    """``SamplingParams.seeds`` (eval): prompt 2's completions are the same alone, beside the
    others, and in generation batches cut differently."""
    params = SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seeds=(11, 12, 21, 22, 31, 32, 41, 42))
    together = HFGenerator(model, tokenizer, batch_size=3).generate(prompts, params)
    alone = HFGenerator(model, tokenizer).generate(prompts[2:3], SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seeds=(31, 32)))
    assert [c.token_ids for c in together[4:6]] == [c.token_ids for c in alone]
    assert together[4].token_ids != together[5].token_ids
    with pytest.raises(ValueError, match="2 seeds for 8 completions"):
        HFGenerator(model, tokenizer).generate(prompts, SamplingParams(n=2, seeds=(1, 2)))


def test_tiny_top_p_is_greedy(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    sampled = generator.generate(prompts, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=16, n=2, seed=3))
    greedy_out = generator.generate(prompts, greedy(16))
    for completion in sampled:
        reference = greedy_out[completion.prompt_index]
        assert completion.token_ids == reference.token_ids
        # At T = 1 the reported log-prob (before truncation) is the greedy one.
        assert torch.allclose(torch.tensor(completion.logprobs), torch.tensor(reference.logprobs), atol=1e-5)


def test_sample_next_token_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(4000, 1)
    rng = torch.Generator().manual_seed(0)
    # Mass before each token: 0, 0.5, 0.8 -> with p = 0.7 the third token is dropped.
    tokens, logprobs = sample_next_token(logits, 1.0, 0.7, rng)
    counts = torch.bincount(tokens, minlength=3).float() / len(tokens)
    assert counts[2] == 0
    assert abs(counts[0] - 0.5 / 0.8) < 0.03 and abs(counts[1] - 0.3 / 0.8) < 0.03
    # Reported log-probs are of the tempered distribution before truncation.
    assert torch.allclose(logprobs, torch.log(torch.tensor([0.5, 0.3, 0.2]))[tokens], atol=1e-6)
    # p = 0.45: the top token alone reaches it.
    tokens, _ = sample_next_token(logits[:200], 1.0, 0.45, rng)
    assert (tokens == 0).all()


def test_sample_next_token_temperature_sharpens():
    logits = torch.tensor([[1.0, 0.0]]).repeat(4000, 1)
    rng = torch.Generator().manual_seed(0)
    tokens, logprobs = sample_next_token(logits, 0.5, 1.0, rng)
    p0 = torch.sigmoid(torch.tensor(2.0)).item()  # softmax([2, 0])[0]
    assert abs((tokens == 0).float().mean().item() - p0) < 0.03
    assert torch.allclose(logprobs[tokens == 0], torch.log(torch.tensor(p0)), atol=1e-6)


# ------------------------------------------------------------------ finish reasons


def test_max_new_tokens_gives_length_and_exactly_that_many_tokens(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    for max_new_tokens in (1, 7):
        for completion in generator.generate(prompts, greedy(max_new_tokens)):
            assert completion.token_ids[-1] != tokenizer.eos_token_id
            assert completion.finish_reason == "length" and not completion.finished
            assert len(completion.token_ids) == len(completion.logprobs) == max_new_tokens
            assert completion.stop_string is None


def test_stop_string_ends_generation_and_stays_in_the_text(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    (free,) = generator.generate([prompts[1]], greedy(30))
    pieces = [tokenizer.decode([t]) for t in free.token_ids]
    # A two-token stop string that first appears at tokens 5-6 of the greedy continuation.
    cut = next(i for i in range(5, len(pieces) - 1) if pieces[i] and pieces[i + 1] and pieces[i] + pieces[i + 1] not in "".join(pieces[: i + 1]))
    stop = pieces[cut] + pieces[cut + 1]
    (stopped,) = generator.generate([prompts[1]], greedy(30, stop=("never-seen", stop)))
    assert stopped.finish_reason == "stop" and stopped.finished
    assert stopped.stop_string == stop
    assert stopped.token_ids == free.token_ids[: cut + 2]
    assert stopped.text.endswith(stop) and stopped.text.count(stop) == 1
    assert stopped.text == tokenizer.decode(stopped.token_ids, skip_special_tokens=True)


def test_rows_that_stopped_do_not_disturb_the_others(model, tokenizer, prompts):
    generator = HFGenerator(model, tokenizer)
    free = generator.generate(prompts, greedy(20))
    first_piece = tokenizer.decode([free[0].token_ids[0]])
    assert first_piece
    stopped = generator.generate(prompts, greedy(20, stop=(first_piece,)))
    assert stopped[0].token_ids == free[0].token_ids[:1] and stopped[0].finish_reason == "stop"
    untouched = [i for i in range(1, len(prompts)) if first_piece not in tokenizer.decode(free[i].token_ids, skip_special_tokens=True)]
    assert untouched  # the check below is not vacuous
    for i in untouched:  # rows that never produce the stop string continue unchanged
        assert stopped[i].token_ids == free[i].token_ids and stopped[i].finish_reason == free[i].finish_reason


def test_eos_ends_generation_with_stop(tokenizer):
    """Teach a small model to answer '42' then EOS; generation ends there, EOS not in the text."""
    torch.manual_seed(0)
    model = build_model(tokenizer, TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))
    prompt = tokenizer.encode("<|user|>q<|assistant|>", add_special_tokens=False)
    target = tokenizer.encode("42", add_special_tokens=False) + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt + target])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0, len(prompt) - 1 : -1], ids[0, len(prompt) :])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    model.train()
    (completion,) = HFGenerator(model, tokenizer).generate([prompt], greedy(10))
    assert completion.token_ids == target
    assert completion.finish_reason == "stop" and completion.stop_string is None
    assert completion.text == "42"
    assert model.training  # the generator restores the caller's mode


def test_extra_eos_ids_from_the_generation_config(tokenizer, prompts):
    model = varied_model(tokenizer, seed=0)
    (free,) = HFGenerator(model, tokenizer).generate([prompts[0]], greedy(12))
    # Many real models list several end tokens (e.g. <|im_end|> and <|endoftext|>).
    third = free.token_ids[2]
    cut = free.token_ids.index(third)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, third]
    (ended,) = HFGenerator(model, tokenizer).generate([prompts[0]], greedy(12))
    assert ended.token_ids == free.token_ids[: cut + 1] and ended.finish_reason == "stop"


def test_update_weights_copies_another_models_weights(tokenizer, prompts):
    a = varied_model(tokenizer, seed=0)
    b = varied_model(tokenizer, seed=1)
    generator = HFGenerator(a, tokenizer)
    from_b = HFGenerator(b, tokenizer).generate(prompts, greedy(12))
    assert [c.token_ids for c in generator.generate(prompts, greedy(12))] != [c.token_ids for c in from_b]
    generator.update_weights(b)
    assert generator.model is a
    assert [c.token_ids for c in generator.generate(prompts, greedy(12))] == [c.token_ids for c in from_b]
