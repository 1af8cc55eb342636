"""The preflight check knows every data source: a dataset folder (DIR or DIR@SPLIT) and a Hub
id pass (they are read at load), a missing file is reported with the others."""

from __future__ import annotations

import pytest

from slowthink.config import ConfigError, load_config
from slowthink.recipes.preflight import check_runnable
from slowthink.recipes.rl_config import RLConfig


def rl(*overrides: str) -> RLConfig:
    return load_config(RLConfig, None, ["data.source=dataset", *overrides])


def test_folders_with_a_split_and_hub_ids_pass(tmp_path):
    (tmp_path / "ds").mkdir()
    for train in (str(tmp_path / "ds"), f"{tmp_path / 'ds'}@train", "openai/gsm8k:main@train"):
        check_runnable(rl(f"data.train_file={train}"), cuda_available=False, vllm_installed=False)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match=r"data.train_file=.*nope.parquet: file not found"):
        check_runnable(rl(f"data.train_file={tmp_path / 'nope.parquet'}"), cuda_available=False, vllm_installed=False)
