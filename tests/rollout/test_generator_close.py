"""Generator.close(): every engine releases what it holds; the tool loop closes its sandbox and engine."""

from __future__ import annotations

from slowthink.models.modeling import load_tokenizer
from slowthink.rollout.generator import Generator
from slowthink.rollout.hf import HFGenerator
from slowthink.rollout.openai_backend import OpenAIGenerator
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig


class Recorder:
    """Stands in for the sandbox and the wrapped engine: counts close() calls."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_every_engine_has_close():
    assert "close" in Generator.__dict__
    for engine in (HFGenerator, OpenAIGenerator, ToolLoop):
        assert callable(getattr(engine, "close", None)), engine


def test_tool_loop_close_closes_its_sandbox_and_engine():
    sandbox, engine = Recorder(), Recorder()
    loop = ToolLoop(engine, sandbox, load_tokenizer("tiny"), ToolLoopConfig())
    loop.close()
    assert (sandbox.closed, engine.closed) == (1, 1)


def test_tool_loop_without_execution_has_no_sandbox_to_close():
    engine = Recorder()
    ToolLoop(engine, None, load_tokenizer("tiny"), ToolLoopConfig(execute=False)).close()
    assert engine.closed == 1
