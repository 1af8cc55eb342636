"""SFT whose train.steps do not get past optim.warmup_steps says so."""

from __future__ import annotations

import pytest

from slowthink.config import load_config
from slowthink.recipes.sft import SFTConfig, run_sft


@pytest.mark.slow
def test_sft_shorter_than_its_warmup_warns(tmp_path, capsys):
    config = load_config(
        SFTConfig,
        None,
        [
            f"run.output_dir={tmp_path}",
            "run.torch_threads=1",
            "run.progress=false",
            "data.tiny_size=16",
            "train.steps=2",
            "train.batch_size=4",
            "train.micro_batch_size=4",
            "optim.warmup_steps=20",
        ],
    )
    run_sft(config)
    err = capsys.readouterr().err
    assert "train.steps=2" in err and "optim.warmup_steps=20" in err, err
