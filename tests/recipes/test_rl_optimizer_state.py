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
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

sys.path[:0] = [str(Path(__file__).parents[1] / "training"), str(Path(__file__).parent)]
from rl_helpers import TINY_RL, tiny_rl_config  # noqa: E402
from test_fsdp import SFT, _torchrun  # noqa: E402

from slowthink.config import ConfigError, load_config  # noqa: E402
from slowthink.models.modeling import ModelLoadError  # noqa: E402
from slowthink.recipes.export import export_checkpoint  # noqa: E402
from slowthink.recipes.rl import run_rl  # noqa: E402
from slowthink.recipes.sft import SFTConfig, run_sft  # noqa: E402
from slowthink.training.checkpoint import is_sharded_checkpoint, latest_checkpoint  # noqa: E402

TWO_RANKS = ["distributed.strategy=fsdp", "distributed.checkpoint_format=sharded", "model.logprob_chunk_size=8"]
ONE_PROCESS_SFT = [option for option in SFT if not option.startswith(("distributed.", "train.steps", "train.save_every"))]


def _sft(out: Path, checkpoint_format: str) -> Path:
    options = [f"run.output_dir={out}", *ONE_PROCESS_SFT, "train.steps=2", "train.save_every=2"]
    run_sft(load_config(SFTConfig, None, [*options, f"distributed.checkpoint_format={checkpoint_format}"]))
    return latest_checkpoint(out)


def _rl_weights(out: Path, *options: str) -> dict[str, torch.Tensor]:
    run = run_rl(tiny_rl_config(out, "train.steps=2", *options))
    return load_file(latest_checkpoint(run) / "model.safetensors")


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> SimpleNamespace:
    """One SFT run's step-2 checkpoint in both formats, and the sharded one exported."""
    root = tmp_path_factory.mktemp("sft")
    full, sharded = _sft(root / "full", "full"), _sft(root / "sharded", "sharded")
    assert is_sharded_checkpoint(sharded) and not is_sharded_checkpoint(full)
    exported = export_checkpoint(sharded, root / "exported")  # model.path reads a Hugging Face folder
    return SimpleNamespace(full=full, sharded=sharded, exported=exported)


@pytest.mark.slow
def test_rl_continues_the_moments_of_a_sharded_sft_checkpoint_as_of_a_full_one(tmp_path, sft):
    from_full = _rl_weights(tmp_path / "rl_full", f"model.path={sft.full}", f"model.optimizer_state={sft.full}")
    from_sharded = _rl_weights(tmp_path / "rl_sharded", f"model.path={sft.exported}", f"model.optimizer_state={sft.sharded}")
    fresh = _rl_weights(tmp_path / "rl_fresh", f"model.path={sft.full}")
    _assert_equal(from_sharded, from_full)
    assert any(not torch.equal(from_full[key], fresh[key]) for key in fresh), "the SFT moments changed nothing"


@pytest.mark.slow
def test_two_fsdp_ranks_writing_sharded_checkpoints_continue_either_format_alike(tmp_path, sft):
    # Saved by one process, continued by two FSDP ranks (rank 1 loads an empty model): the
    # full checkpoint's moments are broadcast from rank 0 into the shards, the sharded one's
    # read by each rank from DCP's shards. The two runs train alike, and not as a fresh optimizer.
    runs = {
        "from_full": [f"model.path={sft.full}", f"model.optimizer_state={sft.full}"],
        "from_sharded": [f"model.path={sft.exported}", f"model.optimizer_state={sft.sharded}"],
        "fresh": [f"model.path={sft.full}"],
    }
    weights = {}
    for name, options in runs.items():
        _torchrun(2, "rl", f"run.output_dir={tmp_path / name}", *TINY_RL, "train.steps=1", *TWO_RANKS, *options)
        assert is_sharded_checkpoint(latest_checkpoint(tmp_path / name))
        weights[name] = load_file(export_checkpoint(tmp_path / name, tmp_path / f"{name}_weights") / "model.safetensors")
    _assert_equal(weights["from_sharded"], weights["from_full"])
    assert any(not torch.equal(weights["from_full"][key], weights["fresh"][key]) for key in weights["fresh"]), "the SFT moments changed nothing"


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_checkpoint_without_optimizer_state_is_refused_naming_the_key_and_folder(tmp_path):
    folder = tmp_path / "no_moments"
    folder.mkdir()
    torch.save({"step": 3}, folder / "trainer_state.pt")  # e.g. a hand-made folder, or a trimmed checkpoint
    config = tiny_rl_config(tmp_path / "rl", f"model.optimizer_state={folder}")
    with pytest.raises(ConfigError, match=rf"model.optimizer_state.*{folder}.*no optimizer state"):
        run_rl(config)
    assert not (tmp_path / "rl" / "checkpoints").exists()  # refused before any step


@pytest.mark.slow
def test_model_path_at_a_sharded_checkpoint_is_refused_naming_the_export_command(tmp_path, sft):
    # The weights of a sharded checkpoint are in DCP's shards, not in model.safetensors:
    # transformers would fail on the missing file; the user needs `slowthink export` first.
    config = tiny_rl_config(tmp_path / "rl", f"model.path={sft.sharded}")
    with pytest.raises(ModelLoadError, match=rf"{sft.sharded} is a sharded checkpoint.*slowthink export {sft.sharded} --out DIR"):
        run_rl(config)
    assert not (tmp_path / "rl" / "checkpoints").exists()
