"""LoRA in the rl and sft recipes: the adapter trains, checkpoints hold it, resume is bit-exact,
and vLLM's weight sync gets the merged weights under the base names."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slowthink.config import load_config
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_engine import generator_sync
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.rollout.generator import Generator
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint, load_trainer_state
from slowthink.training.run_setup import load_policy

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config  # noqa: E402

LORA = ["model.lora.r=4", "model.lora.alpha=8"]
RL_STEPS = ["train.steps=4", "train.save_every=2", "kl.mode=fixed", "kl.coef=0.01", "optim.lr=0.01", *LORA]
SFT = ["run.torch_threads=1", "run.progress=false", "data.tiny_size=32", "train.batch_size=4", "train.micro_batch_size=2", "optim.warmup_steps=0"]


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run_dir) / "adapter_model.safetensors")


def _resume_from_step_2(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of ``run_dir`` as if it had died after its step-2 checkpoint."""
    interrupted = tmp_path / "interrupted"
    shutil.copytree(run_dir, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "step_000004")
    (interrupted / "checkpoints" / "latest").write_text("step_000002")
    return interrupted


def _check_adapter_checkpoint(run_dir: Path) -> None:
    """The checkpoint holds the adapter and its moments only, and the adapter has moved."""
    checkpoint = latest_checkpoint(run_dir)
    names = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.pt"} <= names
    assert "model.safetensors" not in names  # the base stays where model.path names it
    adapter = _adapter(run_dir)
    assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
    assert any(".lora_B." in k and v.abs().max() > 0 for k, v in adapter.items())  # B starts at 0: it trained
    moments = load_trainer_state(checkpoint)["optimizer"]["state"].values()
    assert sorted(tuple(m["exp_avg"].shape) for m in moments) == sorted(tuple(v.shape) for v in adapter.values())


@pytest.mark.slow  # ~40 s: 4 + 2 RL steps on the tiny model
def test_lora_rl_trains_the_adapter_against_the_base_and_resumes_bit_exact(tmp_path):
    straight = run_rl(tiny_rl_config(tmp_path / "straight", *RL_STEPS))
    _check_adapter_checkpoint(straight)
    rows = read_metrics(straight / "metrics.jsonl")
    # The reference is the base (adapter off): the policy moves away from it, and the KL sees it.
    assert rows[0]["kl"] < rows[-1]["kl"] and rows[-1]["kl"] > 0

    resumed = run_rl(tiny_rl_config(_resume_from_step_2(straight, tmp_path), *RL_STEPS), resume=True)
    expected, actual = _adapter(straight), _adapter(resumed)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    again = read_metrics(resumed / "metrics.jsonl")
    assert [r["step"] for r in again] == [1, 2, 3, 4]
    for key in ("reward", "kl", "response_length", "grad_norm"):
        assert [r[key] for r in again] == [r[key] for r in rows], key


@pytest.mark.slow  # ~15 s of SFT steps
def test_lora_sft_trains_the_adapter_and_resumes_bit_exact(tmp_path):
    config = [*SFT, "train.steps=4", "train.save_every=2", "optim.lr=0.01", *LORA]
    straight = run_sft(load_config(SFTConfig, None, [f"run.output_dir={tmp_path / 'straight'}", *config]))
    _check_adapter_checkpoint(straight)
    interrupted = _resume_from_step_2(straight, tmp_path)
    resumed = run_sft(load_config(SFTConfig, None, [f"run.output_dir={interrupted}", *config]), resume=True)
    expected, actual = _adapter(straight), _adapter(resumed)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert [r["loss"] for r in read_metrics(resumed / "metrics.jsonl")] == [r["loss"] for r in read_metrics(straight / "metrics.jsonl")]


class WeightsReceiver(Generator):
    """Stands in for the vLLM engine's side of a sync (on-policy: no ``weights_model``): it records the (name, tensor) stream it gets."""

    def __init__(self) -> None:
        self.received: dict[str, torch.Tensor] = {}

    def load_weights(self, weights) -> None:
        self.received = {name: tensor.clone() for name, tensor in weights}


def test_vllm_sync_of_a_lora_policy_streams_the_merged_base_weights(tmp_path):
    config = load_config(SFTConfig, None, [f"run.output_dir={tmp_path}", *SFT, *LORA])
    model, _ = load_policy(config.model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.01)  # a trained adapter
    receiver = WeightsReceiver()
    generator_sync(receiver, model)
    plain, _ = load_policy(config.model.model_copy(update={"lora": config.model.lora.model_copy(update={"r": 0})}))
    assert receiver.received.keys() == plain.state_dict().keys()  # vLLM's names: the base model's
    expected = model.merge_and_unload().state_dict()
    assert all(torch.allclose(receiver.received[k], expected[k], atol=1e-6) for k in expected)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(receiver.received[q], plain.state_dict()[q])
