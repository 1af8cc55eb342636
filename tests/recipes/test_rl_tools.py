"""Tool-integrated RL on the tiny model: code runs in the sandbox mid-rollout, and the
spliced tool-output tokens never enter the loss (paper section 4.4)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from slowthink.config import load_config
from slowthink.models.modeling import load_model_and_tokenizer
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_engine import build_generator
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.rollout.generator import SamplingParams
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint
from slowthink.training.experience import rollout_sequences

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config  # noqa: E402

# Fitting the code-writing model costs ~10 s: out of `make test-fast`.
pytestmark = pytest.mark.slow


def _response(a: int) -> str:
    # The model writes the code and opens the output block itself; the loop stops at the
    # output fence, runs the code and splices the real output in.
    return f"<think>```python\nprint({a}+3)\n```\n```output\n{a + 3}\n```\n</think>\\boxed{{{a + 3}}}"


@pytest.fixture(scope="module")
def code_writing_model(tmp_path_factory):
    """The tiny model fitted for a few seconds to open its answer with a python block."""
    root = tmp_path_factory.mktemp("tools")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a}+3", "response": _response(a)}) + "\n" for a in range(2, 10)))
    config = load_config(
        SFTConfig,
        None,
        [
            f"run.output_dir={root / 'sft'}",
            "run.torch_threads=1",
            "run.progress=false",
            "data.source=jsonl",
            f"data.train_file={data}",
            "train.steps=60",
            "train.batch_size=8",
            "train.save_every=60",
            "optim.lr=0.003",
            "optim.warmup_steps=0",
        ],
    )
    problems = root / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": str(a), "problem": f"{a}+3", "answer": str(a + 3)}) + "\n" for a in range(2, 10)))
    return latest_checkpoint(run_sft(config)), problems


def _tool_config(tmp_path, fitted):
    model, problems = fitted
    return tiny_rl_config(
        tmp_path / "run",
        f"model.path={model}",
        "data.source=jsonl",
        f"data.train_file={problems}",
        "rollout.tools=python",
        "rollout.max_tool_calls=1",
        "rollout.temperature=0.2",
        "rollout.max_length_schedule=[[0,60]]",
        "train.steps=1",
        "rollout.stop=[]",
    )


def test_tool_output_tokens_are_masked_token_by_token(tmp_path, code_writing_model):
    config = _tool_config(tmp_path, code_writing_model)
    model, tokenizer = load_model_and_tokenizer(str(code_writing_model[0]))
    generator = build_generator(config, model, tokenizer)
    try:
        prompt = tokenizer.encode(
            tokenizer.apply_chat_template([{"role": "user", "content": "2+3"}], tokenize=False, add_generation_prompt=True), add_special_tokens=False
        )
        completions = generator.generate([prompt], SamplingParams(temperature=0.2, max_new_tokens=60, n=2, seed=0))
    finally:
        generator.sandbox.close()
    ran = [c for c in completions if c.tool_calls and c.tool_calls[0]["status"] == "ok"]
    assert ran, [c.text for c in completions]
    completion = ran[0]
    # The output block holds what the code really printed (the model may have copied the sum wrong).
    call = completion.tool_calls[0]
    operands = re.fullmatch(r"print\((\d+)\+(\d+)\)\n", call["code"])
    assert operands, call["code"]
    printed = str(int(operands[1]) + int(operands[2]))
    assert call["output"] == printed and f"```output\n{printed}\n```" in completion.text
    # Tool-output tokens: mask 0 and logprob 0; every other token was sampled (mask 1).
    masked = [i for i, m in enumerate(completion.loss_mask) if m == 0]
    assert masked and all(completion.logprobs[i] == 0.0 for i in masked)
    # Exactly the spliced block after the model's own "```output" fence: the output and the closing fence.
    assert tokenizer.decode([completion.token_ids[i] for i in masked]) == f"\n{printed}\n```\n"
    assert masked == list(range(masked[0], masked[0] + len(masked)))
    # In the training batch, target t predicts token t + 1: the mask lands on exactly those tokens.
    batch = rollout_sequences([prompt], [completion], 1, tokenizer.pad_token_id)
    start = len(prompt) - 1
    row = batch.loss_mask_BT[0, start : start + len(completion.token_ids)].tolist()
    assert row == [float(m) for m in completion.loss_mask]
    assert batch.loss_mask_BT[0, :start].sum() == 0
    assert batch.num_tokens == completion.num_model_tokens


def test_rl_step_with_tools_completes_and_logs_tool_metrics(tmp_path, code_writing_model):
    rows = read_metrics(run_rl(_tool_config(tmp_path, code_writing_model)) / "metrics.jsonl")
    last = rows[-1]
    assert last["tools/tool_calls_per_response"] > 0, last
    assert last["tools/status/ok"] > 0
    # Loss denominators count model tokens only: fewer trained tokens than generated ones.
    assert last["trained_tokens"] < last["response_length"] * 4 * 4 + 1
