"""The reference forward reads only the rows that train, unless the KL sits in the reward.

Selection drops rows (uniform groups, overlength masking, question/response selection)
before the update, where a KL term in the loss and the KL monitor are taken; the demo kept
64% of its rows, and its reference forward over all of them was a quarter of the RL stage.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slowthink.data.problem_sets import ProblemSet
from slowthink.models.tiny import build_model, build_tokenizer
from slowthink.recipes.rl import StepRollouts, prepare_batch
from slowthink.training.logprobs import batched_logprobs

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config, update_parts  # noqa: E402
from test_rl_multirank import COMMON, SPEC, _step  # noqa: E402


def prepared(scenario: str, *overrides: str):
    _, prompt_ids, completions, totals, verdicts = _step(scenario)
    config = tiny_rl_config(Path("unused"), *COMMON, *overrides)
    model = build_model(build_tokenizer(), SPEC, seed=0)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():  # a reference that differs from the policy
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    seen: list[int] = []
    reference.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(len(kwargs.get("input_ids", args[0] if args else []))), with_kwargs=True
    )
    prompts = ProblemSet([SimpleNamespace(answer="")] * 4, prompt_ids)
    scored = SimpleNamespace(total=totals, verdicts=verdicts)
    batch, _, metrics = prepare_batch(update_parts(config, model, reference), StepRollouts(prompts, completions, scored), config.kl.coef, config)
    return config, batch, metrics, seen, reference


@pytest.mark.parametrize("kl", [("kl.mode=fixed",), ("kl.mode=off", "kl.monitor=true")])
def test_kl_in_the_loss_or_the_monitor_reads_the_reference_on_kept_rows_only(kl):
    config, batch, metrics, seen, reference = prepared("one_rank_all_dropped", *kl)
    assert metrics["kept_fraction"] == 0.5  # two of the four groups agree and are dropped
    assert sum(seen) == len(batch) == 8  # not the 16 rows rolled out
    temperature = config.rollout.temperature or 1.0
    expected = batched_logprobs(reference, batch.input_ids_BL, batch.attention_mask_BL, temperature, 16)
    assert torch.allclose(batch.ref_logprobs_BT, expected, atol=1e-6)
    assert (batch.ref_logprobs_BT * batch.loss_mask_BT).abs().sum() > 0


def test_kl_in_the_reward_reads_the_reference_on_every_row():
    _, batch, metrics, seen, _ = prepared("one_rank_all_dropped", "kl.placement=reward")
    assert sum(seen) == 16 and len(batch) == 8
    assert metrics["kl_reward_penalty"] > 0
