"""Every vLLM rollout of a run draws from its own random stream, whatever the rank and step.

vLLM seeds the n children of a request ``seed + i``. Seeds built by adding offsets
(``run*1000003 + step*101 + rank``, then ``+ index*n`` per prompt) overlapped: at the 1.5B
preset's geometry (8 ranks x 16 prompts x 8 rollouts) a step's 1,024 rollouts drew from
135 streams, and the next step reused some. Seeds are now hashed per completion.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from slowthink.config import load_config
from slowthink.data.problem_sets import ProblemSet
from slowthink.recipes.rl import completion_seeds, roll_out, step_seed
from slowthink.recipes.rl_config import RLConfig
from slowthink.rollout.vllm_backend import prompt_seed

PRESET = Path(__file__).parents[2] / "src" / "slowthink" / "configs" / "paper_still3_1.5b.yaml"
RANKS = 8


class Recorder:
    """An engine that keeps the sampling parameters it is asked for and samples nothing."""

    def __init__(self):
        self.params = []

    def generate(self, prompt_ids, params):
        self.params.append((len(prompt_ids), params))
        return []


def vllm_streams(num_prompts: int, params) -> list[int]:
    """The seed of every completion's stream as vLLM derives it (n children: base + i)."""
    if params.seeds is not None:
        return list(params.seeds)
    return [prompt_seed(params.seed, index, params.n) + child for index in range(num_prompts) for child in range(params.n)]


def streams_of_step(config: RLConfig, step: int) -> list[int]:
    per_rank = config.rollout.prompts_per_step // RANKS
    engine = Recorder()
    for rank in range(RANKS):
        prompts = ProblemSet([SimpleNamespace(answer="")] * per_rank, [[1, 2]] * per_rank)
        seeds = completion_seeds(config, step, rank * per_rank, per_rank)
        roll_out(engine, prompts, config, 16, step_seed(config, step, rank), seeds=seeds)
    return [seed for count, params in engine.params for seed in vllm_streams(count, params)]


def test_every_rollout_of_two_steps_has_its_own_stream_at_the_preset_geometry():
    config = load_config(RLConfig, PRESET, [])
    assert config.rollout.backend == "vllm"
    first, second = streams_of_step(config, 10), streams_of_step(config, 11)
    assert len(first) == config.rollout.prompts_per_step * config.rollout.rollouts_per_prompt == 1024
    assert len(set(first)) == len(first)
    assert not set(first) & set(second)


def test_seeds_do_not_depend_on_how_prompts_are_split_over_ranks():
    config = load_config(RLConfig, PRESET, [])
    whole = completion_seeds(config, 3, 0, 16)
    halves = completion_seeds(config, 3, 0, 8) + completion_seeds(config, 3, 8, 8)
    assert whole == halves
    assert all(0 <= seed < 2**63 for seed in whole)  # vLLM's int64
