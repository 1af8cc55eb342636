"""Prompt templates (paper section 3.1.2 and Table 6).

- ``r1_zero``: the short prompt, R1-Zero style (section 3.1.2, "Short Prompt").
- ``long``: the paper's detailed instruction about the reasoning process ("Long Prompt").
- ``chat``: the model's own chat template, no system prompt, the question alone
  (Table 6, the STILL-3-1.5B training and testing prompt).
- ``boxed_chat``: the chat template with "Please reason step by step, and put your final
  answer within \\boxed{}." appended (Table 6's second testing prompt, 6 points worse).
- ``tool``: the chat template with the instruction to solve with Python code (section 4.4).
- ``plain``: the question alone, no template (raw base-model continuation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SHORT_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>.\n\n"
    "The assistant shows the reasoning process in <think> </think> tags, and returns the final answer in "
    "<answer> </answer> tags, for example <answer> 5 </answer>.\n\n"
    "User: {question}\n\nAssistant:\n<think>"
)

LONG_PROMPT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first engages in an internal reasoning process, akin to a stream of consciousness, "
    "before providing the User with the answer. The reasoning process and answer are enclosed within "
    "'<think></think>' and '<answer></answer>' tags, respectively. For example:\n"
    "```\n<think>\nreasoning process here\n</think>\n<answer>\nanswer here\n</answer>\n```\n"
    "The reasoning process includs detailed considerations such as analyzing questions, summarizing "
    "relevant findings, brainstorming new ideas, verifying the accuracy of current steps, refining any "
    "errors, and revisiting previous steps. During this process, the Assistant uses casual, genuine "
    'phrases such as: "Hmm", "Wait", "Alternatively", "double check", "I wonder...", "But", "rethink", '
    "etc., to make the reasoning process coherent, clear, and logically sound, effectively simulating "
    "human cognitive processes.\n\n"
    "The Assistant shows the reasoning process within '<think></think>' tags, and ONLY return the "
    "FINAL ANSWER within '<answer></answer>' tags. For example: '<answer> 3 </answer>'.\n\n"
    "User: {question}\n\nAssistant:\n<think>"
)

BOXED_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
TOOL_SUFFIX = (
    "\nPlease solve the problem with the help of Python code where it helps: write code in a "
    "```python block, its output will be shown in a ```output block. Put your final answer within \\boxed{}."
)


def _chat(question: str, tokenizer: Any) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the 'chat' templates need a tokenizer with a chat template; use template 'r1_zero', 'long' or 'plain'")
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)


TEMPLATES: dict[str, Callable[[str, Any], str]] = {
    "r1_zero": lambda q, tok: SHORT_PROMPT.format(question=q),
    "long": lambda q, tok: LONG_PROMPT.format(question=q),
    "chat": _chat,
    "boxed_chat": lambda q, tok: _chat(q + BOXED_SUFFIX, tok),
    "tool": lambda q, tok: _chat(q + TOOL_SUFFIX, tok),
    "plain": lambda q, tok: q,
}
TEMPLATE_NAMES = tuple(TEMPLATES)


def render_prompt(template: str, question: str, tokenizer: Any = None) -> str:
    """The prompt text for ``question`` under ``template`` (one of ``TEMPLATE_NAMES``)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template '{template}'; allowed: {', '.join(TEMPLATE_NAMES)}")
    return TEMPLATES[template](question, tokenizer)


def encode_prompt(template: str, question: str, tokenizer: Any) -> list[int]:
    """Token ids of the rendered prompt. Chat templates already hold their special tokens."""
    return tokenizer.encode(render_prompt(template, question, tokenizer), add_special_tokens=False)
