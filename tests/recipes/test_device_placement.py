"""Every forward of RL and SFT gets its inputs on the model's device, checked on a CPU machine.

The recipes build their batches on the CPU and train a model that may live on a GPU. The
CPU tests cannot tell the two apart, so here the model sits on the ``meta`` device: a
forward pre-hook asserts that every tensor input is on the parameters' device, then stops
the forward (a meta model computes shapes only, and nothing can be copied off it).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slowthink.data.problem_sets import ProblemSet
from slowthink.data.sft import encode_sft_example
from slowthink.models.tiny import build_model, build_tokenizer
from slowthink.recipes.rl import StepRollouts, loss_settings, prepare_batch
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import micro_batch_logprobs
from slowthink.training.logprobs import batched_logprobs
from slowthink.training.policy_update import update_policy

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config, update_parts  # noqa: E402
from test_rl_multirank import COMMON, SPEC, _step  # noqa: E402


class InputsChecked(Exception):
    """Raised by the hook once a forward's inputs were found on the model's device."""


def on_meta(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` moved to ``meta``, every forward checking its inputs' device, then stopping."""
    model = model.to("meta")

    def check(module, args, kwargs):
        device = next(module.parameters()).device
        inputs = {f"arg{i}": a for i, a in enumerate(args)} | kwargs
        wrong = {name: str(t.device) for name, t in inputs.items() if isinstance(t, torch.Tensor) and t.device != device}
        assert not wrong, f"inputs on another device than the model's ({device}): {wrong}"
        raise InputsChecked

    model.register_forward_pre_hook(check, with_kwargs=True)
    return model


def rl_step(*overrides: str) -> tuple[RLConfig, StepRollouts]:
    """A tiny RL step's config and its rollouts (prompts, completions, scores)."""
    _, prompt_ids, completions, totals, verdicts = _step("one_rank_all_dropped")
    config = tiny_rl_config(Path("unused"), *COMMON, *overrides)
    prompts = ProblemSet([SimpleNamespace(answer="")] * 4, prompt_ids)
    return config, StepRollouts(prompts, completions, SimpleNamespace(total=totals, verdicts=verdicts))


def test_the_checking_hook_lets_a_model_on_the_inputs_device_run():
    model = build_model(build_tokenizer(), SPEC, seed=0)
    ids = torch.tensor([[11, 12, 13]])
    assert batched_logprobs(model, ids, torch.ones_like(ids), 1.0, 4).shape == (1, 2)
    with pytest.raises(AssertionError, match="another device"):
        on_meta(model)(input_ids=ids.to("meta"), attention_mask=torch.ones_like(ids))  # the mask left on the CPU


@pytest.mark.parametrize("placement", ["loss", "reward"])
def test_rl_reference_forward_moves_its_rows_to_the_reference(placement):
    config, rollouts = rl_step(f"kl.placement={placement}")
    policy = build_model(build_tokenizer(), SPEC, seed=0)
    reference = on_meta(copy.deepcopy(policy).eval().requires_grad_(False))
    with pytest.raises(InputsChecked):
        prepare_batch(update_parts(config, policy, reference), rollouts, config.kl.coef, config)


def test_rl_recomputed_old_logprobs_move_their_rows_to_the_policy():
    # Several mini-batches: the old log-probs are the trainer's, recomputed before the update.
    config, rollouts = rl_step("kl.mode=off")
    assert config.update.prompts_per_update < config.rollout.prompts_per_step
    policy = on_meta(build_model(build_tokenizer(), SPEC, seed=0))
    with pytest.raises(InputsChecked):
        prepare_batch(update_parts(config, policy), rollouts, 0.0, config)


def test_rl_update_moves_its_micro_batches_to_the_policy():
    config, rollouts = rl_step()
    policy = build_model(build_tokenizer(), SPEC, seed=0)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    batch, _, _ = prepare_batch(update_parts(config, policy, reference), rollouts, config.kl.coef, config)
    optimizer = torch.optim.AdamW(policy.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    policy = on_meta(policy)
    with pytest.raises(InputsChecked):
        update_policy(policy, optimizer, scheduler, batch, loss_settings(config, config.kl.coef, True), 2, 1, 2, 1.0)


@pytest.mark.parametrize("pack_length", [0, 64], ids=["padded", "packed"])
def test_sft_micro_batches_move_to_the_model(pack_length):
    tokenizer = build_tokenizer()
    examples = [encode_sft_example(tokenizer, f"{a}+{a}=", f"{2 * a}", "chat", False) for a in range(4)]
    model = on_meta(build_model(tokenizer, SPEC, seed=0))
    with pytest.raises(InputsChecked):
        next(micro_batch_logprobs(model, examples, 2, tokenizer.pad_token_id, pack_length))
