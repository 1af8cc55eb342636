"""Two gloo ranks training a LoRA policy under DDP end with the adapter one process trains on
the same global batch; the KL reference is the base (adapter off) on every rank."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from slowthink.models.tiny import build_model, build_tokenizer
from slowthink.recipes.common_config import LoraConfig
from slowthink.recipes.rl import StepRollouts, loss_settings, prepare_batch
from slowthink.recipes.rl_parts import build_reference
from slowthink.training.distributed import DistInfo, wrap_model
from slowthink.training.lora import apply_lora
from slowthink.training.optim import OptimConfig, build_scheduler
from slowthink.training.policy_update import update_policy

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import update_parts  # noqa: E402
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402
from test_rl_multirank import SPEC, _step  # noqa: E402

SCENARIO = "uneven_kept"  # rank 0 keeps 8 rows, rank 1 keeps 4; KL to the reference in the loss


def _train(info: DistInfo) -> tuple[dict[str, torch.Tensor], dict]:
    """One RL update of the adapter (prepare_batch + update_policy, as the recipe calls them) on this rank's share."""
    from types import SimpleNamespace

    from slowthink.data.problem_sets import ProblemSet
    from slowthink.rollout.generator import Completion

    config, prompt_ids, completions, totals, verdicts = _step(SCENARIO)
    share = range(info.rank * 4 // info.world_size, (info.rank + 1) * 4 // info.world_size)
    rows = [i for i, c in enumerate(completions) if c.prompt_index in share]
    local = [Completion(**{**c.__dict__, "prompt_index": c.prompt_index - share.start}) for c in (completions[i] for i in rows)]
    prompts = ProblemSet([SimpleNamespace(answer="")] * len(share), [prompt_ids[p] for p in share])
    scored = SimpleNamespace(total=[totals[i] for i in rows], verdicts=[verdicts[i] for i in rows])
    torch.manual_seed(0)  # adapter A's draw
    model = apply_lora(build_model(build_tokenizer(), SPEC, seed=0), LoraConfig(r=4, alpha=8))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.05)  # away from the base, so the KL term pulls
    reference = build_reference(model)
    wrapped = wrap_model(model, info)
    parts = update_parts(config, model, reference, wrapped)
    batch, row_ranks, _ = prepare_batch(parts, StepRollouts(prompts, local, scored), config.kl.coef, config, info)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)  # the change is the gradient itself
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.5), total_steps=4)
    metrics = update_policy(
        wrapped,
        optimizer,
        scheduler,
        batch,
        loss_settings(config, config.kl.coef, True),
        num_minibatches=2,
        epochs=config.update.epochs,
        micro_batch_size=config.update.micro_batch_size,
        grad_clip=config.optim.grad_clip,
        info=info,
        shuffle_seed=5,
        row_ranks_K=row_ranks,
    )
    return {name: p.detach().clone() for name, p in model.named_parameters()}, metrics


def _worker(rank: int, world: int, port: int, out: dict) -> None:

    torch.set_num_threads(1)
    # A collective that never pairs up raises after 60 s instead of waiting forever.
    with gloo_group(rank, world, port, timeout_s=60):
        out[rank] = _train(DistInfo(rank, world))


@pytest.mark.slow
def test_two_gloo_ranks_train_the_adapter_as_one_process_does():
    results = spawn_with_deadline(_worker, (2, free_port()), 240, "two-rank LoRA update still running after 240 s")
    expected, single = _train(DistInfo())
    assert single["optimizer_steps"] >= 1
    assert single["kl"] > 0  # the reference (adapter off) is the base, away from the policy
    # Only the adapters moved: every base weight is the tiny model's own.
    base = build_model(build_tokenizer(), SPEC, seed=0).state_dict()
    frozen = {k: v for k, v in expected.items() if ".lora_" not in k}
    assert frozen and all(torch.equal(v, base[k.removeprefix("base_model.model.").replace(".base_layer", "")]) for k, v in frozen.items())
    for rank in (0, 1):
        params, metrics = results[rank]
        assert metrics["optimizer_steps"] == single["optimizer_steps"]
        for name in expected:
            torch.testing.assert_close(
                params[name], expected[name], rtol=0, atol=2e-6, msg=lambda m, rank=rank, name=name: f"rank {rank}, {name}: {m}"
            )
