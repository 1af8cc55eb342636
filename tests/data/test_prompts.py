"""Prompt templates (paper section 3.1.2 and Table 6) rendered with the tiny tokenizer."""

from __future__ import annotations

import pytest

from slowthink.data.prompts import BOXED_SUFFIX, LONG_PROMPT, SHORT_PROMPT, TEMPLATE_NAMES, TOOL_SUFFIX, encode_prompt, render_prompt
from slowthink.models.tiny import build_tokenizer

QUESTION = "What is 12+30?"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_template_names():
    assert TEMPLATE_NAMES == ("r1_zero", "long", "chat", "boxed_chat", "tool", "plain")


def test_r1_zero_short_prompt(tokenizer):
    text = render_prompt("r1_zero", QUESTION, tokenizer)
    assert text == SHORT_PROMPT.replace("{question}", QUESTION)
    assert text.startswith("A conversation between User and Assistant.")
    assert text.endswith(f"User: {QUESTION}\n\nAssistant:\n<think>")
    # The short prompt never mentions the reasoning phrases the long one lists.
    assert "Hmm" not in text


def test_long_prompt_has_the_papers_reasoning_instructions(tokenizer):
    text = render_prompt("long", QUESTION, tokenizer)
    assert text == LONG_PROMPT.replace("{question}", QUESTION)
    for phrase in ('"Hmm"', '"Wait"', '"Alternatively"', '"double check"', "revisiting previous steps"):
        assert phrase in text
    assert text.endswith(f"User: {QUESTION}\n\nAssistant:\n<think>")
    # The template does not need a tokenizer.
    assert render_prompt("long", QUESTION) == text


def test_chat_has_no_system_prompt(tokenizer):
    assert render_prompt("chat", QUESTION, tokenizer) == f"<|user|>{QUESTION}<|assistant|>"


def test_boxed_and_tool_chat_append_their_instruction(tokenizer):
    assert render_prompt("boxed_chat", QUESTION, tokenizer) == f"<|user|>{QUESTION}{BOXED_SUFFIX}<|assistant|>"
    assert BOXED_SUFFIX == "\nPlease reason step by step, and put your final answer within \\boxed{}."
    tool = render_prompt("tool", QUESTION, tokenizer)
    assert tool == f"<|user|>{QUESTION}{TOOL_SUFFIX}<|assistant|>"
    assert "```python" in tool and "```output" in tool


def test_plain_is_the_question(tokenizer):
    assert render_prompt("plain", QUESTION, tokenizer) == QUESTION


def test_question_with_braces_is_not_formatted_twice(tokenizer):
    question = "Simplify {x} + \\frac{1}{2}"
    assert render_prompt("r1_zero", question).count(question) == 1
    assert render_prompt("long", question).count(question) == 1


def test_unknown_template_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown prompt template 'fancy'; allowed: r1_zero, long, chat, boxed_chat, tool, plain"):
        render_prompt("fancy", QUESTION)


@pytest.mark.parametrize("template", ["chat", "boxed_chat", "tool"])
def test_chat_templates_need_a_tokenizer_with_a_template(template):
    with pytest.raises(ValueError, match="need a tokenizer with a chat template"):
        render_prompt(template, QUESTION, None)


def test_encode_prompt_adds_no_extra_special_tokens(tokenizer):
    ids = encode_prompt("chat", "1+2", tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids) == ["<|user|>", "1", "+", "2", "<|assistant|>"]
    assert encode_prompt("plain", "1+2", tokenizer) == tokenizer.encode("1+2", add_special_tokens=False)
