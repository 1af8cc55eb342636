"""Reward functions of the user's own: loaded by spec, called with TRL's signature, weighted,
and failing loudly (named function and row) when they raise, return the wrong length or NaN."""

from __future__ import annotations

import math
import textwrap

import pytest

from slowthink.config import ConfigError, load_config
from slowthink.rewards.functions import RewardFunctionError, RewardRow, normalize_spec
from slowthink.rewards.reward import RewardConfig, RewardModel, component_means

FUNCTIONS = textwrap.dedent(
    """
    import time

    def trl_style(prompts, completions, answer, level, **kwargs):
        # A TRL reward function: every column comes as a keyword list.
        return [float(len(c)) * 0.1 + lvl if lvl is not None else None for c, lvl in zip(completions, level)]

    def named_only(completions, answer):
        # No **kwargs: it gets only the columns it names.
        return [1.0 if c.endswith(a) else 0.0 for c, a in zip(completions, answer)]

    def raises_on_b(prompts, completions, **kwargs):
        return [1.0 if c != "b" else 1 / 0 for c in completions]

    def too_short(prompts, completions, **kwargs):
        return [1.0] * (len(completions) - 1)

    def gives_nan(prompts, completions, **kwargs):
        return [float("nan") if c == "b" else 0.0 for c in completions]

    def slow(prompts, completions, **kwargs):
        time.sleep(30)
        return [0.0] * len(completions)
    """
)


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(FUNCTIONS)
    return path


def model_with(path, name: str, extra: list[str] = ()) -> RewardModel:
    config = load_config(
        RewardConfig, None, ["checker=exact", f"functions={{mine: '{path}:{name}'}}", "weights={correctness: 1.0, mine: 0.5}", *extra]
    )
    return RewardModel(config)


ROWS = [RewardRow("p0", "say a", {"answer": "a", "level": 1}), RewardRow("p1", "say b", {"answer": "b", "level": None})]


def test_trl_style_function_is_weighted_beside_the_checker_and_none_adds_nothing(rewards_file):
    model = model_with(rewards_file, "trl_style")
    batch = model.score(["a", "b"], ["\\boxed{a}", "\\boxed{c}"], [3, 3], 10, ROWS)
    assert batch.components["correctness"] == [1.0, 0.0]
    assert batch.components["mine"] == pytest.approx([0.9 + 1, None])
    # total = 1.0 * correctness + 0.5 * mine; the None row gets nothing from 'mine'.
    assert batch.total == pytest.approx([1.0 + 0.5 * 1.9, 0.0])
    assert component_means(batch.components) == pytest.approx({"reward/correctness": 0.5, "reward/mine": 1.9})


def test_function_without_kwargs_gets_only_the_columns_it_names(rewards_file):
    batch = model_with(rewards_file, "named_only").score(["a", "b"], ["x a", "x a"], [1, 1], 10, ROWS)
    assert batch.components["mine"] == [1.0, 0.0]


@pytest.mark.parametrize(
    "name,message",
    [
        ("raises_on_b", r"reward function 'mine' \(.*my_rewards.py:raises_on_b\) raised ZeroDivisionError.*row 1 of the batch, problem 'p1'"),
        ("too_short", r"reward function 'mine' .*returned 1 values for 2 completions"),
        ("gives_nan", r"reward function 'mine' .*returned nan for row 1 \(problem 'p1'\)"),
    ],
)
def test_a_failing_function_fails_the_batch_naming_itself_and_the_row(rewards_file, name, message):
    model = model_with(rewards_file, name)
    with pytest.raises(RewardFunctionError, match=message):
        model.score(["a", "b"], ["a", "b"], [1, 1], 10, ROWS)


def test_a_function_past_its_timeout_fails_the_step(rewards_file):
    model = model_with(rewards_file, "slow", ["function_timeout_s=0.5"])
    with pytest.raises(RewardFunctionError, match=r"'mine' .* took longer than reward.function_timeout_s=0.5s"):
        model.score(["a"], ["a"], [1], 10, ROWS[:1])


def test_config_names_unknown_weights_missing_weights_and_bad_specs(rewards_file, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown reward component\(s\) \['mine'\].*reward.functions.NAME"):
        load_config(RewardConfig, None, ["weights={mine: 1.0}"])
    with pytest.raises(ConfigError, match=r"reward.functions \['mine'\] have no weight"):
        load_config(RewardConfig, None, [f"functions={{mine: '{rewards_file}:trl_style'}}"])
    with pytest.raises(ConfigError, match="reuse a built-in component's name"):
        load_config(RewardConfig, None, [f"functions={{format: '{rewards_file}:trl_style'}}", "weights={format: 1.0}"])
    with pytest.raises(ConfigError, match="is not 'path/to/file.py:function'"):
        load_config(RewardConfig, None, ["functions={mine: no_function_named}", "weights={mine: 1.0}"])
    config = load_config(RewardConfig, None, ["checker=exact", "functions={mine: 'nope.py:f'}", "weights={mine: 1.0}"])
    with pytest.raises(ConfigError, match="no file nope.py"):
        RewardModel(config)
    with pytest.raises(ConfigError, match="has no function 'absent'"):
        model_with(rewards_file, "absent")


def test_relative_file_spec_is_stored_absolute_and_module_specs_load(rewards_file, monkeypatch):
    monkeypatch.chdir(rewards_file.parent)
    assert normalize_spec("my_rewards.py:trl_style") == f"{rewards_file.resolve()}:trl_style"
    config = load_config(RewardConfig, None, ["checker=exact", "functions={n: 'math:fsum'}", "weights={n: 1.0}"])
    assert RewardModel(config).functions["n"].fn is math.fsum


def test_without_rows_a_function_still_sees_the_gold_answers(rewards_file):
    batch = model_with(rewards_file, "named_only").score(["a", "b"], ["a", "a"], [1, 1], 10)
    assert batch.components["mine"] == [1.0, 0.0]
