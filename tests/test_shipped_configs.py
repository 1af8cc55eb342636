"""Every shipped YAML in configs/ loads and validates with its recipe's config class."""

from __future__ import annotations

from pathlib import Path

import pytest

from slowthink.config import load_config
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import SFTConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    kind = SFTConfig if "sft" in path.stem else RLConfig
    config = load_config(kind, path)
    assert config.run.output_dir


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_preset_says_where_its_data_comes_from(path):
    text = path.read_text()
    if "train_file:" in text:  # data not shipped: the comments name each file and its origin
        for line in text.splitlines():
            if line.strip().startswith(("train_file:", "eval_file:")):
                name = line.split(":", 1)[1].split("#")[0].strip()
                assert f"#   {name}" in text, f"{path.name}: no comment says where {name} comes from"
