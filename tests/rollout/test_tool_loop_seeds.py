"""Per-completion seeds (``SamplingParams.seeds``, eval) follow each response through the
tool loop's later rounds, so a tool-using sample does not depend on its batch either."""

from __future__ import annotations

from collections.abc import Sequence

from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig, round_seed


class Tok:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) + 1 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 1) for i in ids if i > 0)


class Recorder:
    """Prompts with "code" write one code block (first round), then a boxed answer."""

    def __init__(self) -> None:
        self.seeds: list[tuple[int, ...] | None] = []
        self.seed: list[int | None] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        self.seeds.append(params.seeds)
        self.seed.append(params.seed)
        out = []
        for index, ids in enumerate(prompt_ids):
            prompt = Tok().decode(list(ids))
            first_round = "```python" not in prompt
            text = "```python\nprint(1)\n```\n```output" if first_round and "code" in prompt else "\\boxed{1}"
            stop = next((s for s in params.stop if s in text), None)
            token_ids = Tok().encode(text) + ([] if stop else [0])
            out.extend(Completion(index, token_ids, [0.0] * len(token_ids), text, "stop", stop_string=stop) for _ in range(params.n))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")


def test_later_rounds_carry_each_responses_own_seed():
    recorder = Recorder()
    loop = ToolLoop(recorder, None, Tok(), ToolLoopConfig(execute=False))
    prompts = [Tok().encode("plain"), Tok().encode("code")]
    loop.generate(prompts, SamplingParams(max_new_tokens=64, n=2, seed=10, seeds=(10, 11, 20, 21)))
    # Round 1: the four completions; round 2: only the two "code" responses go on, each
    # with a seed derived from its own.
    assert recorder.seeds == [(10, 11, 20, 21), (round_seed(20, 1), round_seed(21, 1))]


def test_continuation_seeds_are_hashed_so_consecutive_seeds_never_meet():
    # RL seeds a step's ranks consecutively (recipes/rl.py, step_seed: ... + rank). With
    # seed + round, rank 0's first continuation sampled with rank 1's rollout seed.
    from slowthink.config import load_config
    from slowthink.recipes.rl import step_seed
    from slowthink.recipes.rl_config import RLConfig

    config = load_config(RLConfig, None, ["run.seed=7"])
    rank0, rank1 = step_seed(config, 3, 0), step_seed(config, 3, 1)
    recorder = Recorder()
    ToolLoop(recorder, None, Tok(), ToolLoopConfig(execute=False)).generate([Tok().encode("code")], SamplingParams(max_new_tokens=64, seed=rank0))
    assert recorder.seed == [rank0, round_seed(rank0, 1)]
    assert rank1 == rank0 + 1 and round_seed(rank0, 1) != rank1
    # Rounds of one seed, and the first rounds of neighbouring seeds, all differ.
    seeds = {round_seed(s, r) for s in range(100) for r in range(1, 9)} | set(range(100))
    assert len(seeds) == 100 * 8 + 100
    assert round_seed(rank0, 1) == round_seed(rank0, 1)  # a resumed run draws the same
