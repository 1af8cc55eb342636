"""Per-completion seeds (``SamplingParams.seeds``, eval) follow each response through the
tool loop's later rounds, so a tool-using sample does not depend on its batch either."""

from __future__ import annotations

from collections.abc import Sequence

from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig


class Tok:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) + 1 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 1) for i in ids if i > 0)


class Recorder:
    """Prompts with "code" write one code block (first round), then a boxed answer."""

    def __init__(self) -> None:
        self.seeds: list[tuple[int, ...] | None] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        self.seeds.append(params.seeds)
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
    # Round 1: the four completions; round 2: only the two "code" responses go on, seed + 1 each.
    assert recorder.seeds == [(10, 11, 20, 21), (21, 22)]
