"""The tool loop, token by token: a scripted generator replays segments (the thing under
test is the loop), a character tokenizer makes every id/mask position checkable by hand,
and cells run in the real sandbox."""

from __future__ import annotations

import pytest

from slowthink.monitors.tools import tool_metrics
from slowthink.rollout.generator import Completion, Generator, SamplingParams
from slowthink.rollout.tool_loop import (
    STILL3_FORMAT,
    ToolLoop,
    ToolLoopConfig,
    format_output,
    pending_code,
    sandbox_config_for,
    still3_sandbox_config,
)
from slowthink.sandbox import CellResult, ProcessSandbox, SandboxConfig

MODEL_LOGPROB = -0.5


class CharTokenizer:
    """One token per character: id = code point + 1 (0 is reserved for EOS)."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) + 1 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 1) for i in ids if i > 0)


TOK = CharTokenizer()


class ScriptedGenerator:
    """Replays (text, stop_string) segments in order, one per sequence per call; records calls."""

    def __init__(self, segments: list[tuple[str, str | None]]) -> None:
        self.segments = list(segments)
        self.calls: list[tuple[list[list[int]], SamplingParams]] = []

    def generate(self, prompt_ids, params):
        self.calls.append(([list(p) for p in prompt_ids], params))
        out = []
        for index, _ in enumerate(prompt_ids):
            for _ in range(params.n):
                text, stop = self.segments.pop(0)
                ids = TOK.encode(text) + ([] if stop else [0])  # EOS ends an unstopped segment
                finish = "stop"
                if len(ids) > params.max_new_tokens:
                    ids, finish, stop = ids[: params.max_new_tokens], "length", None
                out.append(Completion(index, ids, [MODEL_LOGPROB] * len(ids), TOK.decode(ids), finish, stop_string=stop))
        return out

    def update_weights(self, model) -> None:
        self.weights = model


@pytest.fixture(scope="module")
def sandbox():
    with ProcessSandbox(SandboxConfig(timeout_s=2, preload=())) as box:
        yield box


def run_loop(segments, sandbox, prompts=("Q:",), config=None, **params):
    generator = ScriptedGenerator(segments)
    loop = ToolLoop(generator, sandbox, TOK, config)
    sampling = SamplingParams(temperature=0, **{"max_new_tokens": 500, **params})
    return loop.generate([TOK.encode(p) for p in prompts], sampling), generator


CODE = "Let me check.\n```python\nprint(2 + 3)\n```\n```output"


def test_output_is_spliced_with_mask_zero_and_generation_continues_from_all_tokens(sandbox):
    (completion,), generator = run_loop([(CODE, "```output"), ("\nSo it is 5.", None)], sandbox)
    tool_text, tail = "\n5\n```\n", "\nSo it is 5."
    assert completion.text == CODE + tool_text + tail
    expected_ids = TOK.encode(CODE) + TOK.encode(tool_text) + TOK.encode(tail) + [0]
    assert completion.token_ids == expected_ids
    n_code, n_tool = len(CODE), len(tool_text)
    assert completion.loss_mask == [1] * n_code + [0] * n_tool + [1] * (len(tail) + 1)
    assert completion.logprobs == [MODEL_LOGPROB] * n_code + [0.0] * n_tool + [MODEL_LOGPROB] * (len(tail) + 1)
    assert completion.num_model_tokens == n_code + len(tail) + 1
    # The second call continued from the prompt plus every token so far, tool tokens included.
    assert generator.calls[1][0] == [TOK.encode("Q:") + TOK.encode(CODE + tool_text)]
    assert "```output" in generator.calls[0][1].stop and generator.calls[1][1].n == 1
    assert completion.finish_reason == "stop" and completion.stop_string is None
    (call,) = completion.tool_calls
    assert (call["status"], call["code"], call["output"]) == ("ok", "print(2 + 3)\n", "5")


def test_a_block_closed_by_a_blank_line_gets_a_whole_output_block(sandbox):
    first = "```python\nx = 6 * 7\nx\n```\n\n"
    (completion,), _ = run_loop([(first, "```\n\n"), ("Done.", None)], sandbox)
    assert completion.text == first + "```output\n42\n```\nDone."
    assert completion.loss_mask[len(first) : len(first) + len("```output\n42\n```\n")] == [0] * 17


def test_still3_format_last_traceback_line_head_tail_cut_and_stateless_cells():
    segments = [
        ("```python\nx = 1\n1 / 0\n```\n```Output", "```Output"),
        ("\nAgain.\n```python\nprint('a' * 300 + 'b' * 300)\n```\n```Output", "```Output"),
        ("\nAnd x?\n```python\nprint(x)\n```\n```Output", "```Output"),
        ("\nEnd.", None),
    ]
    with ProcessSandbox(still3_sandbox_config(preload=())) as box:
        assert (box.config.mode, box.config.timeout_s) == ("stateless", 5.0)
        (completion,), _ = run_loop(segments, box, config=ToolLoopConfig(preset="still3"), max_new_tokens=2000)
    outputs = [call["output"] for call in completion.tool_calls]
    assert outputs == ["ZeroDivisionError: division by zero", "a" * 200 + "..." + "b" * 200, "NameError: name 'x' is not defined"]
    assert "```Output\nZeroDivisionError: division by zero\n```\n\nAgain." in completion.text


def test_format_output_for_statuses_without_a_traceback():
    timeout = CellResult("timeout", "partial\n", "", 5.0)
    assert format_output(timeout, STILL3_FORMAT) == "TimeoutError: the code ran past its time limit"
    default = format_output(timeout, ToolLoop(ScriptedGenerator([]), None, TOK, ToolLoopConfig(execute=False)).fmt)
    assert default == "partial\nTimeoutError: the code ran past its time limit"


def test_max_tool_calls_leaves_later_blocks_unexecuted(sandbox):
    second = "\nMore.\n```python\nprint(9)\n```\n```output"
    segments = [(CODE, "```output"), (second, "```output"), ("\n9\n```\nEnd.", None)]
    (completion,), _ = run_loop(segments, sandbox, config=ToolLoopConfig(max_tool_calls=1))
    assert [c["status"] for c in completion.tool_calls] == ["ok", "not_executed"]
    # Nothing was appended after the second block: the model's own tokens follow it.
    assert completion.text == CODE + "\n5\n```\n" + second + "\n9\n```\nEnd."
    assert completion.loss_mask.count(0) == len("\n5\n```\n")


def test_code_written_but_not_executed_ablation():
    segments = [(CODE, "```output"), ("\n5\n```\nSo 5.", None)]
    (completion,), _ = run_loop(segments, None, config=ToolLoopConfig(execute=False))
    assert completion.text == CODE + "\n5\n```\nSo 5."
    assert completion.loss_mask == [1] * len(completion.token_ids)
    assert completion.tool_calls == [{"status": "not_executed", "code": "print(2 + 3)\n", "output": "", "wall_s": 0.0}]
    with pytest.raises(ValueError, match="needs a Sandbox"):
        ToolLoop(ScriptedGenerator([]), None, TOK, ToolLoopConfig())


def test_total_token_budget_clips_tool_output_and_finishes_with_length(sandbox):
    budget = len(CODE) + 3
    (completion,), generator = run_loop([(CODE, "```output")], sandbox, config=ToolLoopConfig(max_total_tokens=budget))
    assert len(completion.token_ids) == budget
    assert completion.text == CODE + "\n5\n"
    assert completion.loss_mask[-3:] == [0, 0, 0]
    assert completion.finish_reason == "length" and len(generator.calls) == 1


def test_model_segment_is_clipped_to_the_remaining_budget(sandbox):
    segments = [(CODE, "```output"), ("x" * 50, None)]
    budget = len(CODE) + len("\n5\n```\n") + 10
    (completion,), generator = run_loop(segments, sandbox, max_new_tokens=budget)
    assert len(completion.token_ids) == budget and completion.text.endswith("\n```\n" + "x" * 10)
    assert completion.finish_reason == "length"
    assert generator.calls[1][1].max_new_tokens == 10


def test_callers_own_stop_string_ends_the_response(sandbox):
    (completion,), generator = run_loop([("<answer>5</answer>", "</answer>")], sandbox, stop=("</answer>",))
    assert completion.stop_string == "</answer>" and len(generator.calls) == 1


def test_a_fence_that_is_not_runnable_code_just_continues(sandbox):
    segments = [("```text\nnot code\n```\n\n", "```\n\n"), ("ok", None)]
    (completion,), _ = run_loop(segments, sandbox)
    assert completion.text == "```text\nnot code\n```\n\nok" and completion.tool_calls == []


def test_batches_keep_prompt_major_order_and_continue_only_active_responses(sandbox):
    segments = [(CODE, "```output"), ("A", None), ("B", None), ("C", None), ("\nD", None)]
    completions, generator = run_loop(segments, sandbox, prompts=("P0", "P1"), n=2)
    assert [c.prompt_index for c in completions] == [0, 0, 1, 1]
    assert [c.text for c in completions] == [CODE + "\n5\n```\n\nD", "A", "B", "C"]
    assert generator.calls[1][0] == [TOK.encode("P0") + TOK.encode(CODE + "\n5\n```\n")]


def test_session_mode_shares_globals_within_a_response_only():
    segments = [
        ("```python\ny = 40\n```\n\n", "```\n\n"),
        ("```python\nz = 1\n```\n\n", "```\n\n"),
        ("```python\ny + 2\n```\n\n", "```\n\n"),
        ("```python\nprint(y)\n```\n\n", "```\n\n"),
        ("end", None),
        ("end", None),
    ]
    with ProcessSandbox(SandboxConfig(mode="session", preload=())) as box:
        completions, _ = run_loop(segments, box, prompts=("A", "B"))
    assert [c["output"] for c in completions[0].tool_calls] == ["", "42"]
    assert completions[1].tool_calls[1]["status"] == "error"


def test_pending_code_rules():
    text = "```python\nprint(1)\n```\n```output"
    assert pending_code(text, STILL3_FORMAT.__class__("d"), 0) == ("print(1)\n", True)
    fmt = STILL3_FORMAT.__class__("d")
    assert pending_code(text, fmt, 1) is None  # already handled
    assert pending_code("```python\nprint(1)\n", fmt, 0) is None  # not closed
    assert pending_code("```python\nprint(1)\n```\nand then", fmt, 0) is None  # prose after it
    assert pending_code("```python\nx\n```\n\n", fmt, 0) == ("x\n", False)


def test_tool_metrics_by_hand():
    def completion(statuses):
        calls = [{"status": s, "code": "", "output": ""} for s in statuses]
        return Completion(0, [1], [0.0], "", "stop", tool_calls=calls)

    completions = [completion(["ok", "error"]), completion(["ok"]), completion([]), completion(["not_executed"])]
    metrics = tool_metrics(completions, [True, False, True, False])
    assert metrics == {
        "tool_calls_per_response": 1.0,
        "responses_with_tools": 2,
        "responses_without_tools": 2,
        "tool_status_counts": {"error": 1, "not_executed": 1, "ok": 2},
        "accuracy_with_tools": 0.5,
        "accuracy_without_tools": 0.5,
    }
    with pytest.raises(ValueError, match="2 completions but 1"):
        tool_metrics(completions[:2], [True])


def test_tool_loop_over_the_real_tiny_hf_generator(sandbox):
    """A tiny Qwen2 fitted in a second to one tool-using answer: greedy decoding writes the
    code block and stops at the output fence, the loop runs the code, splices the real
    output as mask-0 tokens, and the model continues after it."""
    torch = pytest.importorskip("torch")
    from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
    from slowthink.rollout.hf import HFGenerator

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128))
    prompt = tokenizer.encode("<|user|>go<|assistant|>")
    code_part, tool_part, tail = "```python\nprint(6*7)\n```\n```output", "\n42\n```\n", "ok"
    target = tokenizer.encode(code_part + tool_part + tail) + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt + target])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    loop = ToolLoop(HFGenerator(model, tokenizer), sandbox, tokenizer)
    (completion,) = loop.generate([prompt], SamplingParams(temperature=0, max_new_tokens=60))
    assert completion.tool_calls[0]["status"] == "ok" and completion.tool_calls[0]["output"] == "42"
    n_code = len(tokenizer.encode(code_part))
    spliced = tokenizer.encode(tool_part)
    assert completion.token_ids[:n_code] == tokenizer.encode(code_part)
    assert completion.token_ids[n_code : n_code + len(spliced)] == spliced
    assert completion.loss_mask[:n_code] == [1] * n_code
    assert completion.loss_mask[n_code : n_code + len(spliced)] == [0] * len(spliced)
    assert completion.logprobs[n_code : n_code + len(spliced)] == [0.0] * len(spliced)
    assert completion.text == code_part + tool_part + tail
    assert completion.finish_reason == "stop"


def test_the_loop_is_a_generator_and_passes_weights_through():
    generator = ScriptedGenerator([])
    loop = ToolLoop(generator, None, TOK, ToolLoopConfig(execute=False))
    assert isinstance(loop, Generator)
    loop.update_weights("new weights")
    assert generator.weights == "new weights"
    assert sandbox_config_for("still3").timeout_s == 5.0 and sandbox_config_for("default", timeout_s=2).timeout_s == 2
