"""The SFT recipe on the tiny model: it learns, resumes, and rejects bad rows clearly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from slowthink.config import load_config
from slowthink.data.problems import DataError
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint

BASE = ["run.torch_threads=1", "run.progress=false", "data.tiny_size=64", "train.batch_size=8", "train.micro_batch_size=4", "optim.warmup_steps=0"]


def _config(out, *overrides):
    return load_config(SFTConfig, None, [f"run.output_dir={out}", *BASE, *overrides])


@pytest.mark.slow  # ~9 s of SFT steps
def test_sft_lowers_the_loss_and_keeps_its_defaults(tmp_path):
    config = _config(tmp_path / "run", "train.steps=30", "train.save_every=30", "optim.lr=0.003")
    assert config.optim.schedule == "cosine"  # a partial override keeps the other SFT defaults
    rows = read_metrics(run_sft(config) / "metrics.jsonl")
    assert len(rows) == 30
    assert sum(r["loss"] for r in rows[-5:]) / 5 < 0.8 * sum(r["loss"] for r in rows[:5]) / 5


def test_sft_resume_equals_an_uninterrupted_run(tmp_path):
    straight = run_sft(_config(tmp_path / "a", "train.steps=4", "train.save_every=2", "train.keep_checkpoints=2"))
    # The same run as if it had died after step 2: its last checkpoint is step 2.
    interrupted = tmp_path / "b"
    shutil.copytree(straight, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "step_000004")
    (interrupted / "checkpoints" / "latest").write_text("step_000002")
    resumed = run_sft(_config(interrupted, "train.steps=4", "train.save_every=2"), resume=True)
    a = load_file(latest_checkpoint(straight) / "model.safetensors")
    b = load_file(latest_checkpoint(resumed) / "model.safetensors")
    assert latest_checkpoint(resumed).name == "step_000004"
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_metrics(resumed / "metrics.jsonl")] == [1, 2, 3, 4]


def test_sft_on_chat_messages_with_tool_outputs_masked(tmp_path):
    data = tmp_path / "train.jsonl"
    response = "<think>check\n```python\nprint(2+3)\n```\n```output\n5\n```\n</think>\\boxed{5}"
    rows = [{"messages": [{"role": "user", "content": "2+3"}, {"role": "assistant", "content": response}]}] * 4
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = _config(
        tmp_path / "run", "data.source=jsonl", f"data.train_file={data}", "data.mask_tool_outputs=true", "train.steps=2", "train.batch_size=4"
    )
    rows = read_metrics(run_sft(config) / "metrics.jsonl")
    from slowthink.data.sft import encode_sft_example
    from slowthink.models.modeling import load_tokenizer

    example = encode_sft_example(load_tokenizer("tiny"), [{"role": "user", "content": "2+3"}], response, "chat", mask_tool_outputs=True)
    assert rows[0]["tokens"] == sum(example.loss_mask) * 4 < len(example.response_ids) * 4


def test_sft_bad_row_names_file_and_line(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(DataError, match=f"{data}:2"):
        run_sft(_config(tmp_path / "run", "data.source=jsonl", f"data.train_file={data}", "train.steps=1"))
