"""The tool loop's edges: where the interpreter's text sits (spans), what its tokens may be
(no control tokens from a cell's output), which output fences hand over to the
interpreter, and a token budget that ends exactly on a stop string.

The model is scripted (``Scripted``: one full response per prompt, cut at the first stop
string the call asks for, kept, as engines do), the tokenizer is the real tiny one (it
has an end-of-text special token), cells run in the real sandbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from slowthink.models.modeling import load_tokenizer
from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig
from slowthink.sandbox import ProcessSandbox, SandboxConfig


class Scripted:
    """A Generator whose response is ``respond(response so far)``, cut at the first of the
    call's stop strings (kept), else ended by EOS; clipped to ``max_new_tokens``."""

    def __init__(self, tokenizer, respond: Callable[[str], str]) -> None:
        self.tok, self.respond = tokenizer, respond
        self.calls: list[SamplingParams] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        self.calls.append(params)
        out = []
        for index, ids in enumerate(prompt_ids):
            so_far = self.tok.decode(list(ids)).split("Q:", 1)[1]
            text, stop = self.respond(so_far), None
            hits = sorted((text.find(s) + len(s), s) for s in params.stop if s in text)
            if hits:
                end, stop = hits[0]
                text = text[:end]
            token_ids = self.tok.encode(text, add_special_tokens=False) + ([] if stop else [self.tok.eos_token_id])
            finish = "stop"
            if len(token_ids) > params.max_new_tokens:
                token_ids, finish, stop = token_ids[: params.max_new_tokens], "length", None
            text = self.tok.decode(token_ids, skip_special_tokens=True)
            out.extend(Completion(index, token_ids, [-0.5] * len(token_ids), text, finish, stop_string=stop) for _ in range(params.n))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sandbox():
    with ProcessSandbox(SandboxConfig(timeout_s=5, preload=())) as box:
        yield box


def generate(tok, sandbox, respond, config: ToolLoopConfig | None = None, max_new_tokens: int = 400, seed: int | None = None):
    model = Scripted(tok, respond)
    loop = ToolLoop(model, sandbox, tok, config)
    (completion,) = loop.generate([tok.encode("Q:", add_special_tokens=False)], SamplingParams(max_new_tokens=max_new_tokens, seed=seed))
    return completion, model


def two_cells(so_far: str) -> str:
    """Writes the output fence itself after the first cell, closes the second by a blank line."""
    if not so_far:
        return "A\n```python\nprint(2 + 3)\n```\n```output"
    if so_far.count("```python") == 1:
        return "B\n```python\nprint('x' + '`' * 3 + 'y')\n```\n\n"
    return "So \\boxed{5}"


def test_each_executed_call_records_the_span_the_interpreter_wrote(tok, sandbox):
    completion, _ = generate(tok, sandbox, two_cells)
    first, second = (call["span"] for call in completion.tool_calls)
    text = completion.text
    # The model wrote the first output fence: the span starts after it. The second block
    # was closed by a blank line: the loop wrote the fence too, and the span holds it.
    assert text[first[0] : first[1]] == "\n5\n```\n" and text[: first[0]].endswith("```output")
    assert text[second[0] : second[1]] == "```output\nx```y\n```\n"
    # The spans are exactly the loss-mask-0 tokens, in order.
    tool_text = "".join(tok.decode([t]) for t, m in zip(completion.token_ids, completion.loss_mask) if m == 0)
    assert tool_text == text[first[0] : first[1]] + text[second[0] : second[1]]


def test_a_cell_that_prints_control_tokens_puts_no_control_token_in_the_context(tok, sandbox):
    def respond(so_far: str) -> str:
        if "```output" not in so_far:
            return "```python\nprint('<|endof' + 'text|>' + '<|us' + 'er|>')\n```\n```output"
        return "Done \\boxed{1}"

    completion, model = generate(tok, sandbox, respond)
    assert completion.tool_calls[0]["output"] == "<|endoftext|><|user|>"
    specials = {tok.eos_token_id, tok.convert_tokens_to_ids("<|user|>")}
    tool_ids = [t for t, m in zip(completion.token_ids, completion.loss_mask) if m == 0]
    assert not specials & set(tool_ids)
    # The ids and the text agree: decoding the ids gives the text back, and the model was
    # continued after the output as text, not after an end of turn.
    assert tok.decode(completion.token_ids[:-1]) == completion.text
    assert completion.text.endswith("Done \\boxed{1}") and completion.finish_reason == "stop"


@pytest.mark.parametrize("preset", ["default", "still3"])
@pytest.mark.parametrize("fence", ["```output", "```Output"])
def test_either_output_fence_hands_over_to_the_interpreter_in_either_preset(tok, sandbox, preset, fence):
    # The `tool` prompt asks for a ```output block; the still3 preset writes ```Output. A
    # model that follows either must have its code run, whatever the preset.
    def respond(so_far: str) -> str:
        if fence not in so_far:
            return f"```python\nprint(6 * 7)\n```\n{fence}\n999\n```\nI guessed."
        return "\\boxed{42}"

    completion, _ = generate(tok, sandbox, respond, ToolLoopConfig(preset=preset))
    assert [call["status"] for call in completion.tool_calls] == ["ok"]
    assert completion.text == f"```python\nprint(6 * 7)\n```\n{fence}\n42\n```\n\\boxed{{42}}"


def test_a_budget_that_ends_on_a_stop_string_finishes_as_length_with_the_block_unexecuted(tok, sandbox):
    written = "```python\nprint(1)\n```\n```output"
    budget = len(tok.encode(written, add_special_tokens=False))
    completion, model = generate(tok, sandbox, lambda so_far: written + "\n1\n```\nEnd.", max_new_tokens=budget)
    assert completion.text == written and len(completion.token_ids) == budget
    # No room to run the cell and read its output: the row was cut, not finished.
    assert completion.finish_reason == "length" and completion.stop_string is None
    assert [call["status"] for call in completion.tool_calls] == ["not_executed"]
    assert len(model.calls) == 1
