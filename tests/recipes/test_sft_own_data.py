"""SFT on a parquet file of chat messages under another column name, through the column mapping;
a missing column exits 2 naming it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import load_config
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.tracking import read_metrics

datasets = pytest.importorskip("datasets")

BASE = ["run.torch_threads=1", "run.progress=false", "train.steps=2", "train.batch_size=4", "train.micro_batch_size=4", "train.save_every=2"]


def chats(count: int) -> list[dict]:
    return [
        {"conversations": [{"role": "user", "content": f"{i}+1"}, {"role": "assistant", "content": f"<think>add</think>\\boxed{{{i + 1}}}"}]}
        for i in range(count)
    ]


@pytest.mark.slow
def test_sft_trains_on_a_parquet_of_chat_messages(tmp_path):
    path = tmp_path / "chats.parquet"
    datasets.Dataset.from_list(chats(8)).to_parquet(str(path))
    mapped = ["data.source=dataset", f"data.train_file={path}", "data.columns={messages: conversations}"]
    config = load_config(SFTConfig, None, [f"run.output_dir={tmp_path / 'run'}", *BASE, *mapped])
    rows = read_metrics(run_sft(config) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)


def test_a_missing_sft_column_exits_2_naming_it(tmp_path):
    path = tmp_path / "chats.parquet"
    datasets.Dataset.from_list(chats(2)).to_parquet(str(path))
    args = ["sft", f"run.output_dir={tmp_path / 'run'}", *BASE, "data.source=dataset", f"data.train_file={path}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "no column 'prompt' (for prompt), 'response' (for response)" in result.output
    assert "columns: conversations" in result.output
