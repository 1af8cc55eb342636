"""The long-CoT cold start in `slowthink sft`: packing trains exactly like padding, and the
trace filter / max-length policy are counted in metrics.jsonl."""

from __future__ import annotations

import json

import pytest

from slowthink.config import ConfigError, load_config
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.tracking import read_metrics

BASE = [
    "run.torch_threads=1",
    "run.progress=false",
    "data.tiny_size=32",
    "train.batch_size=8",
    "train.micro_batch_size=4",
    "optim.warmup_steps=0",
    "train.steps=2",
    "train.save_every=2",
]


def _config(out, *overrides):
    return load_config(SFTConfig, None, [f"run.output_dir={out}", *BASE, *overrides])


def test_packed_sft_has_the_same_loss_as_padded(tmp_path):
    padded = read_metrics(run_sft(_config(tmp_path / "padded", "data.max_length=256")) / "metrics.jsonl")
    packed = read_metrics(run_sft(_config(tmp_path / "packed", "data.max_length=256", "data.packing=true")) / "metrics.jsonl")
    assert [r["tokens"] for r in packed] == [r["tokens"] for r in padded]
    for a, b in zip(padded, packed):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    assert packed[0]["data/kept"] == packed[0]["data/rows"] == 32


def test_trace_filter_and_truncation_are_counted(tmp_path):
    def row(answer, response):
        return {"messages": [{"role": "user", "content": "1+2"}, {"role": "assistant", "content": response}], "answer": answer}

    rows = [
        row("3", "<think>1+2=3</think>\\boxed{3}"),  # kept
        row("4", "<think>1+2=3</think>\\boxed{3}"),  # incorrect
        row("3", "\\boxed{3}"),  # too short
        row("3", "<think>" + "1+2=3 " * 12 + "</think>\\boxed{3}"),  # longer than max_length: answer masked
    ]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [
        "data.source=jsonl",
        f"data.train_file={data}",
        "data.check_answers=exact",
        "data.min_response_tokens=5",
        "data.max_length=40",
        "train.batch_size=2",
        "train.micro_batch_size=2",
    ]
    first = read_metrics(run_sft(_config(tmp_path / "mask", *common, "data.truncation=mask")) / "metrics.jsonl")[0]
    assert first["data/rows"] == 4 and first["data/kept"] == 2
    assert first["data/dropped_incorrect"] == 1 and first["data/dropped_too_short"] == 1 and first["data/truncated_masked"] == 1
    first = read_metrics(run_sft(_config(tmp_path / "drop", *common, "data.truncation=drop")) / "metrics.jsonl")[0]
    assert first["data/kept"] == 1 and first["data/dropped_truncated"] == 1


def test_packing_needs_a_max_length():
    with pytest.raises(ConfigError, match="data.packing=true needs data.max_length"):
        load_config(SFTConfig, None, ["data.packing=true"])
