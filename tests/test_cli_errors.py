"""A user's mistake gets one message and exit status 2 in every command, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.cli.errors import exit_code_for


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert any(line.startswith("error:") for line in result.output.splitlines()), result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_rl_bad_key(tmp_path):
    assert_user_error(invoke("rl", f"run.output_dir={tmp_path}", "kl.bogus=1"), "kl.bogus")


def test_sft_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = invoke("sft", f"run.output_dir={tmp_path / 'run'}", "data.source=jsonl", f"data.train_file={missing}", "train.steps=1")
    assert_user_error(result, str(missing))


def test_eval_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    assert_user_error(invoke("eval", "--data", str(missing), "--out", str(tmp_path / "out"), "--checker", "exact"), str(missing))


def test_eval_bad_option(tmp_path):
    assert_user_error(invoke("eval", "--benchmark", "nope", "--out", str(tmp_path / "out")), "nope")


def test_distill_tir_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = invoke("distill-tir", "--data", str(missing), "--out", str(tmp_path / "o.jsonl"), "--checker", "exact")
    assert_user_error(result, str(missing))


def test_score_missing_file(tmp_path):
    assert_user_error(invoke("score", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")), "missing.jsonl")


def test_serve_missing_model(tmp_path):
    missing = tmp_path / "no-model"
    assert_user_error(invoke("serve", "--model", str(missing)), str(missing))


def test_report_not_a_run(tmp_path):
    assert_user_error(invoke("report", str(tmp_path), "--out", str(tmp_path / "rep")), "metrics.jsonl")


def test_demo_bad_override(tmp_path):
    assert_user_error(invoke("demo", "--out", str(tmp_path), "--sft", "train.bogus=1"), "train.bogus")
    # A bad RL override is found before the SFT stage runs (minutes on a CPU).
    result = invoke("demo", "--out", str(tmp_path), "--rl", "kl.bogus=1")
    assert_user_error(result, "kl.bogus")
    assert "built the tiny model" not in result.output and "SFT cold start" not in result.output


def test_sandbox_bad_setting(tmp_path):
    cell = tmp_path / "cell.py"
    cell.write_text("print(1)\n")
    assert_user_error(invoke("sandbox", "run", str(cell), "--set", "bogus=1"), "bogus")


def test_sft_batch_that_does_not_split_over_ranks_is_a_config_error(tmp_path):
    # torchrun with 3 ranks and train.batch_size=4: a config the user must change, not a bare ValueError.
    from slowthink.config import ConfigError, load_config
    from slowthink.recipes.sft import SFTConfig, train_sft
    from slowthink.training.distributed import DistInfo
    from slowthink.training.run_dir import RunStart

    config = load_config(SFTConfig, None, [f"run.output_dir={tmp_path}", "train.batch_size=4", "train.steps=1", "run.torch_threads=1"])
    with pytest.raises(ConfigError, match="train.batch_size"):
        train_sft(config, RunStart(Path(tmp_path), None), DistInfo(rank=0, world_size=3))


def test_exit_codes_by_kind():
    from slowthink.config import ConfigError
    from slowthink.rollout.openai_backend import OpenAIBackendError

    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(OpenAIBackendError("server down")) == 1  # not the user's mistake
    assert exit_code_for(ValueError("a bug")) is None  # a bug keeps its traceback


def test_version():
    from slowthink import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"slowthink {__version__}"


@pytest.mark.parametrize(
    "override", ["train.batch_size=0", "train.micro_batch_size=0", "train.steps=0", "train.save_every=0", "optim.warmup_steps=-1"]
)
def test_sft_impossible_sizes_are_config_errors(tmp_path, override):
    # Each used to crash with a bare ValueError/ZeroDivisionError traceback, or run zero steps.
    result = invoke("sft", f"run.output_dir={tmp_path / 'run'}", "data.tiny_size=8", override)
    assert_user_error(result, override.split("=")[0])
