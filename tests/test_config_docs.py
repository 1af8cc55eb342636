"""One config path for every command: file + flags + overrides, --print-config, field docs.

The docs tests are the CI check: a config field without a doc, or a docs/config.md that no
longer matches the field docs, fails here (regenerate with
``python -m slowthink.cli config --markdown docs/config.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import Field
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import ConfigError, StrictConfig, config_to_yaml, load_config
from slowthink.config.docs import COMMAND_CONFIGS, config_class, describe, markdown, undocumented

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("command", list(COMMAND_CONFIGS))
def test_every_config_field_has_a_doc(command):
    missing = undocumented(config_class(command))
    assert not missing, f"`slowthink {command}` keys without a doc (write one where the field is defined): {missing}"


def test_a_field_without_a_doc_is_found():
    class Documented(StrictConfig):
        """A section."""

        a: int = 1
        """Docstring doc,
        over two lines."""
        b: int = Field(2, description="Description doc.")

    class Bare(StrictConfig):
        inner: Documented = Documented()
        x: int = 0
        # A comment is for readers of the code: it is not a doc.
        y: int = 0
        z: int = 0  # nor is a trailing one

    assert undocumented(Documented) == []
    assert [row.doc for row in describe(Documented)] == ["Docstring doc, over two lines.", "Description doc."]
    # The section takes its class docstring; the bare fields are reported.
    assert undocumented(Bare) == ["x", "y", "z"]


def test_docs_config_md_is_up_to_date():
    path = ROOT / "docs" / "config.md"
    assert path.read_text(encoding="utf-8") == markdown(), "docs/config.md is stale: run `python -m slowthink.cli config --markdown docs/config.md`"


# Minimal arguments that make each command's config valid (the required keys).
REQUIRED = {
    "rl": [],
    "sft": [],
    "eval": ["-b", "math500"],
    "score": ["in.jsonl", "--out", "o.jsonl"],
    "serve": [],
    "distill-tir": ["--data", "p.jsonl", "--out", "o.jsonl"],
    "curate": ["src.jsonl", "--out", "pool.jsonl"],
    "study": ["configs/study/table1_tiny.yaml"],
}


@pytest.mark.parametrize("command", list(COMMAND_CONFIGS))
def test_print_config_prints_a_config_that_loads_back(command):
    result = invoke(command, *REQUIRED[command], "--print-config")
    assert result.exit_code == 0, result.output
    # What is printed loads back into the same config (so it can be saved and rerun as a file).
    reloaded = config_class(command).model_validate(yaml.safe_load(result.output))
    assert config_to_yaml(reloaded) == result.output


@pytest.mark.parametrize("command", list(COMMAND_CONFIGS))
def test_config_command_lists_every_key_and_help_points_there(command):
    listing = invoke("config", command)
    assert listing.exit_code == 0, listing.output
    for row in describe(config_class(command)):
        assert row.key in listing.output
    help_text = invoke(command, "--help").output
    assert f"slowthink config {command}" in " ".join(help_text.split())


def test_help_lists_the_sections():
    text = " ".join(invoke("rl", "--help").output.split())
    assert "Config sections: run, model, data, rollout, reward, algorithm, kl," in text


def test_unknown_command_for_config_is_a_user_error():
    result = invoke("config", "nope")
    assert result.exit_code == 2 and "commands: rl, sft, eval" in result.output


def test_yaml_then_flags_then_overrides(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("data: {benchmarks: [math500], limit: 5}\nsampling: {max_tokens: 100, seed: 3}\n")
    result = invoke("eval", str(config), "--max-tokens", "200", "--seed", "4", "sampling.seed=5", "backend.tensor_parallel_size=2", "--print-config")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    # YAML < flag < override; a key no flag names (backend.tensor_parallel_size) is reachable too.
    sampling = printed["sampling"]
    assert (printed["data"]["limit"], sampling["max_tokens"], sampling["seed"], printed["backend"]["tensor_parallel_size"]) == (5, 200, 5, 2)


def test_a_flag_not_given_leaves_the_yaml_value(tmp_path):
    from slowthink.recipes.evaluate import EvalConfig

    config = tmp_path / "eval.yaml"
    config.write_text("data: {benchmarks: [math500]}\nsampling: {mode: sampled}\nprogress: false\n")
    cfg = load_config(EvalConfig, config, [], {"sampling.mode": None, "progress": None, "data.benchmarks": []})
    assert (cfg.sampling.mode, cfg.progress, cfg.data.benchmarks) == ("sampled", False, ("math500",))


def test_bad_key_names_the_key_and_exits_2():
    result = invoke("eval", "-b", "math500", "backend.tensor_parallel_sise=2")
    assert result.exit_code == 2 and "unknown key 'backend.tensor_parallel_sise'" in result.output
    with pytest.raises(ConfigError, match="'sampling': need 0 <= min_injections"):
        from slowthink.recipes.distill_tir import DistillTIRConfig

        load_config(DistillTIRConfig, None, ["sampling.min_injections=3", "sampling.max_injections=1"], {"data.file": "p", "out": "o"})


def test_distill_tir_model_means_the_local_model_as_in_eval():
    result = invoke(
        "distill-tir",
        "--data",
        "p.jsonl",
        "--out",
        "o.jsonl",
        "--model",
        "some/dir",
        "--backend",
        "openai",
        "--base-url",
        "http://x/v1",
        "--served-model-name",
        "served",
        "sampling.n=4",
        "--print-config",
    )
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert (printed["model"], printed["backend"]["served_model_name"], printed["sampling"]["n"]) == ("some/dir", "served", 4)
    # The sampling fields are one section, not flags (max_tokens keeps its --max-tokens flag).
    expected = {"n", "temperature", "top_p", "max_tokens", "code_temperature", "code_max_tokens", "min_injections", "max_injections"}
    assert set(printed["sampling"]) == expected


@pytest.mark.parametrize("command", list(COMMAND_CONFIGS))
def test_generated_flags_name_real_keys_and_take_their_default_from_the_field(command):
    """A flag is written once, as a dotted key: its help names the key and shows the field's
    default, so a default changed in the config cannot leave a stale one in --help."""
    import typer

    from slowthink.config.docs import default_text
    from slowthink.config.fields import field_at

    group = typer.main.get_command(app)
    cmd = group.commands[command]
    specs = getattr(cmd.callback, "config_flags", ())
    options = {param.name: param for param in cmd.get_params(typer.Context(cmd, info_name=command))}
    for spec in specs:
        section, field = field_at(config_class(command), spec.key)  # a KeyError names a flag without a key
        option = options[spec.parameter]
        assert option.help.startswith(f"(key {spec.key}) "), option.help
        default = default_text(field)
        if default not in ("null", "required", "[]"):
            assert f"(default {default})" in option.help
    assert command not in ("eval", "score", "curate", "serve", "distill-tir") or specs, f"{command} should declare its flags as dotted keys"


def test_a_flag_sets_its_key_and_a_bad_value_names_the_flag(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"answer": "2", "response": "\\\\boxed{2}"}\n')
    out = str(tmp_path / "out.jsonl")
    printed = yaml.safe_load(invoke("score", str(source), "--out", out, "--workers", "3", "--fallback", "--pass-k", "2", "--print-config").output)
    assert (printed["checker"]["workers"], printed["checker"]["answer_fallback"], printed["pass_k"]) == (3, True, [2])
    result = invoke("score", str(source), "--out", out, "--workers", "three")
    assert result.exit_code == 2 and "--workers" in result.output
