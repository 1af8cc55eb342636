"""RewardModel with the math checker, end to end through the worker pool."""

import pytest

from slowthink.rewards.reward import RewardConfig, RewardModel


def test_reward_model_with_math_checker():
    config = RewardConfig(checker="math", weights={"correctness": 1.0, "still3": 0.5, "length": 2.0}, check_timeout_s=2.0)
    model = RewardModel(config)
    try:
        golds = [r"\frac{1}{2}", r"\frac{1}{2}", "3"]
        responses = [r"<think>x</think> \boxed{0.5}", r"\boxed{0.33}", "no idea"]
        batch = model.score(golds, responses, lengths=[100, 50, 200], max_length=400)
    finally:
        model.close()
    assert [v.status for v in batch.verdicts] == ["correct", "wrong", "no_answer"]
    assert batch.components["correctness"] == [1.0, 0.0, 0.0]
    assert batch.components["still3"] == [1.0, -1.0, -2.0]
    assert batch.components["length"] == pytest.approx([1.25, -0.875, -0.5])
    # total = 1*correctness + 0.5*still3 + 2*length
    assert batch.total == pytest.approx([1 + 0.5 + 2.5, 0 - 0.5 - 1.75, 0 - 1.0 - 1.0])
