"""SFT examples: ``{"prompt", "response"}`` or ``{"messages": [...]}`` JSONL rows -> token ids + loss mask.

Must not import torch, transformers, rollout, training, recipes or the CLI (tests/test_layers.py).

The loss covers response tokens only (and the end-of-sequence token). With chat
messages, the final assistant message is the response and everything before it, rendered
by the tokenizer's chat template, is the prompt. Tool outputs (```output blocks) can be
kept in the loss (the paper kept them, section 4.4) or masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowthink.data.problems import DataError, iter_jsonl
from slowthink.prompts import render_prompt

OUTPUT_BLOCK_RE = re.compile(r"```(?:output|Output)\n.*?```", re.DOTALL)


@dataclass(frozen=True)
class SFTExample:
    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]  # one per response token


def parse_sft_row(row: Any, where: str) -> tuple[str | list[dict[str, str]], str]:
    """(prompt text or chat messages before the answer, response text); errors name ``where``."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
            raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must be the assistant's (the response to learn)")
        return messages[:-1], str(messages[-1]["content"])
    missing = [k for k in ("prompt", "response") if not isinstance(row.get(k), str)]
    if missing:
        raise DataError(f"{where}: missing or non-string field(s) {', '.join(missing)}; an SFT row needs 'prompt' and 'response' (or 'messages')")
    return row["prompt"], row["response"]


def load_sft_rows(path: str | Path) -> list[tuple[str | list[dict[str, str]], str]]:
    return [(prompt, response) for prompt, response, _ in load_sft_records(path)]


def load_sft_records(path: str | Path) -> list[tuple[str | list[dict[str, str]], str, str | None]]:
    """(prompt or messages, response, gold answer or None): a row's optional ``answer``
    field lets the long-CoT filter check the trace (data/long_cot.py)."""
    records = []
    for lineno, row in iter_jsonl(path):
        prompt, response = parse_sft_row(row, f"{path}:{lineno}")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            raise DataError(f"{path}:{lineno}: 'answer' must be a string or a number")
        records.append((prompt, response, None if answer is None else str(answer)))
    if not records:
        raise DataError(f"{path}: no SFT rows in file")
    return records


def response_mask(tokenizer: Any, response: str, mask_tool_outputs: bool) -> tuple[list[int], list[int]]:
    """Token ids of ``response`` and a loss mask that zeroes tool-output spans when asked."""
    if not mask_tool_outputs:
        ids = tokenizer.encode(response, add_special_tokens=False)
        return ids, [1] * len(ids)
    encoded = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    spans = [m.span() for m in OUTPUT_BLOCK_RE.finditer(response)]
    mask = [0 if any(s <= start < e for s, e in spans) else 1 for start, _ in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), mask


def encode_sft_example(
    tokenizer: Any, prompt: str | list[dict[str, str]], response: str, template: str, mask_tool_outputs: bool = False
) -> SFTExample:
    """Prompt ids (template applied) and response ids ending in EOS, with the response loss mask."""
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    else:
        text = render_prompt(template, prompt, tokenizer)
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    ids, mask = response_mask(tokenizer, response, mask_tool_outputs)
    return SFTExample(prompt_ids, ids + [tokenizer.eos_token_id], mask + [1])
