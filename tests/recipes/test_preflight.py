"""check_runnable: every problem that stops a config from running here, reported at once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slowthink.config import ConfigError, load_config, shipped_config_dir
from slowthink.recipes.preflight import check_runnable
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import SFTConfig

PRESET = shipped_config_dir() / "paper_still3_1.5b.yaml"


def test_a_gpu_preset_on_a_cpu_machine_reports_every_problem_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    config = load_config(RLConfig, PRESET)
    with pytest.raises(ConfigError) as caught:
        check_runnable(config, cuda_available=False, vllm_installed=False)
    message = str(caught.value)
    assert "4 problems" in message
    assert "model.device=cuda" in message and "no CUDA device" in message
    assert "rollout.backend=vllm" in message and "vllm" in message
    assert "data.train_file=data/train.jsonl" in message and "data.eval_file=data/aime24.jsonl" in message
    assert "slowthink curate" in message  # where training problems come from
    assert "aime24" in message  # where the benchmark copy comes from
    # The advice does not go round in circles: nothing says "use model.device=cpu" while keeping vllm.
    assert "use model.device=cpu" not in message


def test_each_problem_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("train.jsonl", "aime24.jsonl"):
        (tmp_path / "data" / name).write_text('{"id": "1", "problem": "1+1", "answer": "2"}\n')
    config = load_config(RLConfig, PRESET)
    check_runnable(config, cuda_available=True, vllm_installed=True)  # a GPU machine with the data: fine
    with pytest.raises(ConfigError, match="1 problem") as caught:
        check_runnable(config, cuda_available=True, vllm_installed=False)
    assert "rollout.backend=vllm" in str(caught.value) and "data.train_file" not in str(caught.value)


def test_missing_model_and_optimizer_state_paths(tmp_path):
    config = load_config(RLConfig, None, [f"model.path={tmp_path}/nope", f"model.optimizer_state={tmp_path}/gone"])
    with pytest.raises(ConfigError, match="2 problems") as caught:
        check_runnable(config, cuda_available=False, vllm_installed=False)
    assert f"{tmp_path}/nope" in str(caught.value) and f"{tmp_path}/gone" in str(caught.value)


def test_an_optimizer_state_folder_without_moments_is_refused_before_anything_loads(tmp_path):
    import torch

    (tmp_path / "empty").mkdir()
    (tmp_path / "no_moments").mkdir()
    torch.save({"step": 3}, tmp_path / "no_moments" / "trainer_state.pt")
    for folder, why in (("empty", "no trainer_state.pt"), ("no_moments", "holds no optimizer state")):
        config = load_config(RLConfig, None, [f"model.optimizer_state={tmp_path / folder}"])
        with pytest.raises(ConfigError, match=rf"model.optimizer_state={tmp_path / folder}: {why}"):
            check_runnable(config, cuda_available=False, vllm_installed=False)


def test_tiny_configs_run_anywhere():
    check_runnable(load_config(RLConfig, shipped_config_dir() / "tiny_rl.yaml"), cuda_available=False, vllm_installed=False)
    check_runnable(load_config(SFTConfig, shipped_config_dir() / "tiny_sft.yaml"), cuda_available=False, vllm_installed=False)


def test_sft_missing_train_file(tmp_path):
    config = load_config(SFTConfig, None, ["data.source=jsonl", f"data.train_file={tmp_path}/sft.jsonl"])
    with pytest.raises(ConfigError, match="1 problem") as caught:
        check_runnable(config, cuda_available=False, vllm_installed=False)
    assert "prompt" in str(caught.value)  # says what an SFT row holds


def test_cli_reports_all_problems_and_exits_2(tmp_path, monkeypatch):
    from slowthink.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["rl", str(PRESET), f"run.output_dir={tmp_path / 'run'}"])
    assert result.exit_code == 2, result.output
    assert "data.train_file=data/train.jsonl" in result.output and "data.eval_file=data/aime24.jsonl" in result.output
    assert not (tmp_path / "run").exists()  # refused before anything was written
