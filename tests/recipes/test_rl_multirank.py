"""Two gloo ranks end with the same parameters as one process on the same global batch,
whatever each rank's filters drop.

Before, each rank selected and split its own rows: a rank whose groups were all dropped
made no backward pass while the other waited in DDP's all-reduce (a hang), and ranks with
uneven kept counts made different numbers of micro-batches. Now the per-row outcomes are
gathered, selection and advantages are global, the mini-batch plan is global, and a rank
with a smaller share runs zero-weight padding micro-batches. Every worker has a gloo
timeout and the test a deadline, so a hang fails instead of wedging CI.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slowthink.data.problem_sets import ProblemSet
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.recipes.rl import StepRollouts, loss_settings, prepare_batch
from slowthink.rollout.generator import Completion
from slowthink.training.distributed import DistInfo, wrap_model
from slowthink.training.experience import SelectionSettings
from slowthink.training.optim import OptimConfig, build_scheduler
from slowthink.training.policy_update import update_policy

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config, update_parts  # noqa: E402
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402

SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
T, F = True, False
# 4 prompts x 4 rollouts; rank 0 rolls out prompts 0-1, rank 1 prompts 2-3. Two mini-batches
# (prompts_per_update=2) and two epochs; KL to the reference in the loss unless stated.
COMMON = [
    "rollout.prompts_per_step=4",
    "update.prompts_per_update=2",
    "update.epochs=2",
    "update.micro_batch_size=2",
    "algorithm.drop_uniform_groups=true",
    "kl.mode=fixed",
    "kl.coef=0.05",
]
SCENARIOS = {
    # Rank 1's groups all agree: it keeps nothing and must still join every collective.
    "one_rank_all_dropped": dict(rewards=[[1, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]),
    # Rank 0 keeps 8 rows, rank 1 keeps 4; micro-batches of 3 split them unevenly.
    "uneven_kept": dict(rewards=[[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 1, 1], [1, 1, 1, 1]], overrides=["update.micro_batch_size=3"]),
    # Question selection keeps groups whose correct answers are the longer ones (0 and 2).
    "question_selection": dict(
        rewards=[[1, 0, 1, 0]] * 4,
        lengths=[[6, 2, 6, 2], [2, 6, 2, 6], [5, 3, 5, 3], [3, 5, 3, 5]],
        overrides=["algorithm.question_selection=true"],
    ),
    # Truncated rows leave the baselines; groups 1 and 3 agree on their finished rows. KL in the reward.
    "overlength_masking": dict(
        rewards=[[1, -1, -2, 1], [-1, -1, -2, -2], [1, -2, -1, -2], [1, 1, -2, 1]],
        finished=[[T, T, F, T], [T, T, F, F], [T, F, T, F], [T, T, F, T]],
        overrides=["algorithm.overlength_masking=true", "kl.placement=reward"],
    ),
    # REINFORCE++ scales by one std over the whole batch: every rank's rows, not its own.
    "reinforce_pp_batch_std": dict(rewards=[[1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1], [3, 0, 1, 1]], overrides=["algorithm.advantage=reinforce_pp"]),
}


def _step(name: str):
    """The scenario's config and global step: prompt ids, completions, scores."""
    scenario = SCENARIOS[name]
    config = tiny_rl_config(Path("unused"), *COMMON, *scenario.get("overrides", []))
    generator = torch.Generator().manual_seed(0)
    rewards = scenario["rewards"]
    lengths = scenario.get("lengths") or torch.randint(2, 7, (4, 4), generator=generator).tolist()
    finished = scenario.get("finished") or [[True] * 4] * 4
    prompt_ids = [torch.randint(10, 60, (int(n),), generator=generator).tolist() for n in (2, 3, 4, 3)]
    completions = [
        Completion(
            prompt_index=p,
            token_ids=torch.randint(10, 60, (lengths[p][g],), generator=generator).tolist(),
            logprobs=(-torch.rand(lengths[p][g], generator=generator)).tolist(),
            text="",
            finish_reason="stop" if finished[p][g] else "length",
        )
        for p in range(4)
        for g in range(4)
    ]
    verdicts = [SimpleNamespace(correct=rewards[p][g] > 0) for p in range(4) for g in range(4)]
    return config, prompt_ids, completions, [float(r) for row in rewards for r in row], verdicts


def _train(name: str, info: DistInfo) -> tuple[torch.Tensor, dict]:
    """One RL update (prepare_batch + update_policy, as the recipe calls them) on this rank's share."""
    config, prompt_ids, completions, totals, verdicts = _step(name)
    share = range(info.rank * 4 // info.world_size, (info.rank + 1) * 4 // info.world_size)
    rows = [i for i, c in enumerate(completions) if c.prompt_index in share]
    local = [Completion(**{**c.__dict__, "prompt_index": c.prompt_index - share.start}) for c in (completions[i] for i in rows)]
    prompts = ProblemSet([SimpleNamespace(answer="")] * len(share), [prompt_ids[p] for p in share])
    scored = SimpleNamespace(total=[totals[i] for i in rows], verdicts=[verdicts[i] for i in rows])
    model = build_model(build_tokenizer(), SPEC, seed=0)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    wrapped = wrap_model(model, info)
    parts = update_parts(config, model, reference, wrapped)
    batch, row_ranks, _ = prepare_batch(parts, StepRollouts(prompts, local, scored), config.kl.coef, config, info)
    # Plain SGD: the parameter change is the gradient itself (Adam turns float noise into steps).
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
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
    return torch.cat([p.detach().flatten() for p in model.parameters()]), metrics


def _worker(rank: int, world: int, port: int, out: dict) -> None:

    torch.set_num_threads(1)
    # A collective that never pairs up raises after 60 s instead of waiting forever.
    with gloo_group(rank, world, port, timeout_s=60):
        for name in SCENARIOS:
            out[(name, rank)] = _train(name, DistInfo(rank, world))


@pytest.mark.slow
def test_two_gloo_ranks_end_with_the_single_process_parameters_whatever_is_dropped():
    results = spawn_with_deadline(
        _worker, (2, free_port()), 240, "two-rank RL update still running after 240 s: the ranks' collectives do not pair up"
    )
    for name in SCENARIOS:
        expected, single = _train(name, DistInfo())
        assert single["optimizer_steps"] >= 1, name  # each scenario trains something
        for rank in (0, 1):
            params, metrics = results[(name, rank)]
            assert metrics["optimizer_steps"] == single["optimizer_steps"], name
            torch.testing.assert_close(params, expected, rtol=0, atol=2e-6, msg=lambda m, name=name, rank=rank: f"{name}, rank {rank}: {m}")
        assert results[(name, 0)][1]["entropy"] == pytest.approx(single["entropy"], abs=1e-6)  # global statistics


def test_the_scenarios_drop_what_they_say():
    from slowthink.training.experience import RowOutcomes, keep_mask

    kept = {}
    for name in SCENARIOS:
        config, _, completions, totals, verdicts = _step(name)
        a = config.algorithm
        settings = SelectionSettings(a.advantage, a.drop_uniform_groups, a.question_selection, a.response_selection, a.overlength_masking)
        outcomes = RowOutcomes(
            torch.tensor(totals).view(4, 4),
            torch.tensor([v.correct for v in verdicts]).view(4, 4),
            torch.tensor([c.num_model_tokens for c in completions]).view(4, 4),
            torch.tensor([c.finished for c in completions]).view(4, 4),
            torch.zeros(4, 4),
        )
        keep = keep_mask(outcomes, settings)
        kept[name] = (int(keep[:2].sum()), int(keep[2:].sum()))  # rows kept on rank 0, rank 1
    assert kept == {
        "one_rank_all_dropped": (8, 0),
        "uneven_kept": (8, 4),
        "question_selection": (4, 4),
        "overlength_masking": (3, 2),
        "reinforce_pp_batch_std": (8, 8),
    }


@pytest.mark.slow
def test_torchrun_two_ranks_with_uneven_filtering_complete(tmp_path):
    # The recipe end to end: overlength masking at a 4-token limit and uniform groups dropped
    # leave the ranks different numbers of rows; micro-batches of 1 made their backward
    # passes (DDP all-reduces) differ in number, so before, the ranks hung.
    import subprocess

    from rl_helpers import TINY_RL

    from slowthink.tracking import read_metrics

    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        "-m",
        "slowthink.cli",
        "rl",
        f"run.output_dir={tmp_path / 'run'}",
        *TINY_RL,
        "train.steps=2",
        "algorithm.drop_uniform_groups=true",
        "algorithm.overlength_masking=true",
        "rollout.max_length_schedule=[[0,4]]",
        "update.micro_batch_size=1",
        "update.prompts_per_update=2",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun RL with uneven filtering did not finish in 240 s: the ranks hang")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["optimizer_steps"] == min(2, round(r["kept_fraction"] * 16)) for r in rows), rows
