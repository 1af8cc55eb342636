"""Every paper preset starts and completes one RL step on CPU, so a preset that no longer
parses or builds fails CI.

Only what needs a GPU or data that is not shipped is overridden: the model (the tiny
default, float32 on CPU), the rollout backend (hf; the vLLM path has its own tests in
tests/with_vllm), the problems (the tiny task), and the sizes (a few prompts, 8-token
responses). Everything else (reward, KL, algorithm, optimizer, update shape, length
schedule stages, template, group filtering) runs as the preset says, except that digits
are stop strings (see ``cpu_overrides``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slowthink.config import load_config, read_yaml
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_config import RLConfig
from slowthink.tracking import read_metrics

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("paper_*.yaml"))
PROMPTS_PER_STEP = 4


def cpu_overrides(preset: dict, out: Path) -> list[str]:
    """Dotted overrides that make ``preset`` run one tiny step here, keeping its structure."""
    rollout, update = preset.get("rollout", {}), preset.get("update", {})
    # Keep the preset's updates per batch (STILL-3-1.5B: 128 prompts in mini-batches of 64 -> 2).
    per_update = PROMPTS_PER_STEP
    if update.get("prompts_per_update"):
        per_update = PROMPTS_PER_STEP * update["prompts_per_update"] // rollout.get("prompts_per_step", 32)
    # Keep the length curriculum's stages, at 8 tokens each.
    schedule = [[start, 8] for start, _ in rollout.get("max_length_schedule", [[0, 8]])]
    return [
        f"run.output_dir={out}",
        "run.torch_threads=1",
        "run.progress=false",
        "model.path=tiny",
        "model.dtype=float32",
        "model.device=cpu",
        "rollout.backend=hf",
        f"rollout.prompts_per_step={PROMPTS_PER_STEP}",
        "rollout.rollouts_per_prompt=2",
        f"rollout.max_length_schedule={schedule}",
        f"update.prompts_per_update={per_update}",
        "data.source=tiny",
        "data.train_file=null",
        "data.eval_file=null",
        "data.tiny_train_size=16",
        "data.tiny_eval_size=2",
        "train.steps=1",
        "train.save_every=1",
        "train.eval_max_problems=2",
        # Digits end some responses early, as a trained model's answers end: with 8-token
        # responses nothing would finish otherwise, and overlength masking would mask it all.
        "rollout.stop=['0','1','2','3','4','5']",
    ]


def test_there_are_paper_presets():
    assert {p.name for p in PRESETS} >= {"paper_still3_1.5b.yaml", "paper_still3_zero_32b.yaml"}


@pytest.mark.slow
@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_paper_preset_runs_one_step_on_cpu(tmp_path, path):
    preset = read_yaml(path)
    config = load_config(RLConfig, path, cpu_overrides(preset, tmp_path / "run"))
    # The preset's own choices survive the overrides.
    assert config.reward.weights == RLConfig.model_validate(preset).reward.weights
    assert config.kl.mode == RLConfig.model_validate(preset).kl.mode
    # The presets keep every group, as the paper did: the random tiny model's all-wrong
    # groups still make a (zero-advantage) update rather than none.
    assert config.algorithm.drop_uniform_groups is False
    run_dir = run_rl(config)
    (row,) = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["step"] == 1]
    assert row["optimizer_steps"] >= 1 and "heldout/accuracy" in row
    assert (run_dir / "checkpoints").is_dir()
