"""The RL step rewards rollouts while the rest are still decoding (reward scoring
overlapped with generation), and the rewards are those of scoring after generation."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from slowthink.data.problem_sets import ProblemSet
from slowthink.data.problems import Problem
from slowthink.models.tiny import build_tokenizer
from slowthink.recipes.rl import reward_inputs, roll_out
from slowthink.recipes.rl_config import RLConfig
from slowthink.rewards.reward import RewardConfig, RewardModel
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Generator, SamplingParams
from slowthink.rollout.hf import HFGenerator

sys.path.insert(0, str(Path(__file__).parents[1] / "rollout"))
from test_hf import QUESTIONS, varied_model  # noqa: E402


class TimedChecker(ExactMatchChecker):
    """The exact checker, noting when each call starts and on which thread."""

    def __init__(self):
        self.calls: list[tuple[float, str, int]] = []

    def check(self, golds, responses):
        self.calls.append((time.monotonic(), threading.current_thread().name, len(golds)))
        return super().check(golds, responses)


def setup():
    tokenizer = build_tokenizer()
    model = varied_model(tokenizer, seed=0)  # weights at std 0.2: rows end at different lengths
    questions = QUESTIONS
    prompts = ProblemSet(
        [Problem(id=str(i), problem=q, answer=str(eval(q))) for i, q in enumerate(questions)],
        [tokenizer.encode(f"<|user|>{q}<|assistant|>", add_special_tokens=False) for q in questions],
    )
    generator = HFGenerator(model, tokenizer)
    config = RLConfig.model_validate({"rollout": {"rollouts_per_prompt": 4, "temperature": 1.0}})
    return tokenizer, generator, prompts, config


def test_rows_are_checked_while_the_others_decode_and_score_as_after_generation():
    tokenizer, generator, prompts, config = setup()
    # A token that greedy decoding emits early ends rows: some finish long before the rest.
    early = generator.generate(prompts.prompt_ids, SamplingParams(temperature=0, max_new_tokens=8))
    generator.eos_ids = {tokenizer.eos_token_id, early[0].token_ids[2]}
    checker = TimedChecker()
    rewards_model = RewardModel(RewardConfig(checker="exact", weights={"correctness": 1.0, "length": 0.5}), checker=checker)
    stream = rewards_model.stream(48)
    completions = roll_out(generator, prompts, config, 48, seed=5, rewards=stream)
    returned = time.monotonic()
    scored = stream.result(*reward_inputs(prompts, completions))
    assert min(t for t, _, _ in checker.calls) < returned  # checking began before generation ended
    assert {name for _, name, _ in checker.calls} == {"slowthink-reward_0"}
    assert sum(n for _, _, n in checker.calls) == len(completions) == 16  # every row once
    assert {c.finish_reason for c in completions} == {"stop", "length"}
    after = rewards_model.score(*reward_inputs(prompts, completions), 48)
    assert scored.total == after.total and scored.verdicts == after.verdicts and scored.components == after.components
    rewards_model.close()


def test_an_engine_that_does_not_stream_is_rewarded_after_generation():
    tokenizer, generator, prompts, config = setup()

    class Plain(Generator):  # any Generator without on_finished (vLLM, OpenAI, the tool loop): the default
        def generate(self, prompt_ids, params):
            return generator.generate(prompt_ids, params)

    checker = TimedChecker()
    rewards_model = RewardModel(RewardConfig(checker="exact"), checker=checker)
    stream = rewards_model.stream(16)
    completions = roll_out(Plain(), prompts, config, 16, seed=5, rewards=stream)
    assert checker.calls == []
    scored = stream.result(*reward_inputs(prompts, completions))
    assert len(checker.calls) == 1 and len(scored.total) == 16
    rewards_model.close()
