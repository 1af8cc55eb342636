"""``model.optimizer_state``: an RL run continues the AdamW moments of an SFT checkpoint, full
or sharded (docs/scale.md, "Checkpoints at scale").

An SFT run saved in both formats (one process: the same weights and moments) hands RL the same
optimizer state: RL continued from the sharded checkpoint trains exactly as RL continued from
the full one, and differently from a fresh optimizer (the moments were taken, not ignored).
A folder holding no optimizer state is refused naming the key and the folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path[:0] = [str(Path(__file__).parents[1] / "training"), str(Path(__file__).parent)]
from rl_helpers import tiny_rl_config  # noqa: E402
from test_fsdp import SFT  # noqa: E402

from slowthink.config import ConfigError, load_config  # noqa: E402
from slowthink.recipes.export import export_checkpoint  # noqa: E402
from slowthink.recipes.rl import run_rl  # noqa: E402
from slowthink.recipes.sft import SFTConfig, run_sft  # noqa: E402
from slowthink.training.checkpoint import is_sharded_checkpoint, latest_checkpoint  # noqa: E402

ONE_PROCESS_SFT = [option for option in SFT if not option.startswith(("distributed.", "train.steps", "train.save_every"))]


def _sft(out: Path, checkpoint_format: str) -> Path:
    options = [f"run.output_dir={out}", *ONE_PROCESS_SFT, "train.steps=2", "train.save_every=2"]
    run_sft(load_config(SFTConfig, None, [*options, f"distributed.checkpoint_format={checkpoint_format}"]))
    return latest_checkpoint(out)


def _rl_weights(out: Path, *options: str) -> dict[str, torch.Tensor]:
    run = run_rl(tiny_rl_config(out, "train.steps=2", *options))
    return load_file(latest_checkpoint(run) / "model.safetensors")


@pytest.mark.slow
def test_rl_continues_the_moments_of_a_sharded_sft_checkpoint_as_of_a_full_one(tmp_path):
    full = _sft(tmp_path / "sft_full", "full")
    sharded = _sft(tmp_path / "sft_sharded", "sharded")
    assert is_sharded_checkpoint(sharded) and not is_sharded_checkpoint(full)
    weights = export_checkpoint(sharded, tmp_path / "sft_exported")  # model.path reads a Hugging Face folder

    from_full = _rl_weights(tmp_path / "rl_full", f"model.path={full}", f"model.optimizer_state={full}")
    from_sharded = _rl_weights(tmp_path / "rl_sharded", f"model.path={weights}", f"model.optimizer_state={sharded}")
    fresh = _rl_weights(tmp_path / "rl_fresh", f"model.path={full}")
    assert from_sharded.keys() == from_full.keys()
    for key in from_full:
        assert torch.equal(from_sharded[key], from_full[key]), key
    assert any(not torch.equal(from_full[key], fresh[key]) for key in fresh), "the SFT moments changed nothing"


def test_a_checkpoint_without_optimizer_state_is_refused_naming_the_key_and_folder(tmp_path):
    folder = tmp_path / "no_moments"
    folder.mkdir()
    torch.save({"step": 3}, folder / "trainer_state.pt")  # e.g. a hand-made folder, or a trimmed checkpoint
    config = tiny_rl_config(tmp_path / "rl", f"model.optimizer_state={folder}")
    with pytest.raises(ConfigError, match=rf"model.optimizer_state.*{folder}.*no optimizer state"):
        run_rl(config)
    assert not (tmp_path / "rl" / "checkpoints").exists()  # refused before any step
