"""SFT examples: ``{"prompt", "response"}`` or ``{"messages": [...]}`` JSONL rows -> token ids + loss mask.

The loss covers response tokens only (and the end-of-sequence token). With chat
messages, the final assistant message is the response and everything before it, rendered
by the tokenizer's chat template, is the prompt. What the interpreter inserted into a
tool-using response (a row's ``tool_spans``, as ``distill-tir`` writes them, else its
output blocks: data/tool_spans.py) can be kept in the loss (the paper kept it, section
4.4) or masked; either way it is tokenized without special-token parsing, so a cell that
printed ``<|im_end|>`` never becomes an end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowthink.data.problems import DataError, iter_jsonl
from slowthink.data.prompts import render_prompt
from slowthink.data.tool_spans import Span, check_spans, output_block_spans, pieces


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
    return [(prompt, response) for prompt, response, _, _ in load_sft_records(path)]


def parse_tool_spans(row: dict[str, Any], response: str, where: str) -> list[Span] | None:
    """A row's ``tool_spans`` (which characters of the response the interpreter wrote,
    as ``distill-tir`` records them), checked; None when the row has none."""
    if row.get("tool_spans") is None:
        return None
    try:
        return check_spans(row["tool_spans"], len(response))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def load_sft_records(path: str | Path) -> list[tuple[str | list[dict[str, str]], str, str | None, list[Span] | None]]:
    """(prompt or messages, response, gold answer or None, tool spans or None): a row's
    optional ``answer`` lets the long-CoT filter check the trace (data/long_cot.py), its
    optional ``tool_spans`` say what the interpreter wrote (data/tool_spans.py)."""
    records = []
    for lineno, row in iter_jsonl(path):
        prompt, response = parse_sft_row(row, f"{path}:{lineno}")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            raise DataError(f"{path}:{lineno}: 'answer' must be a string or a number")
        records.append((prompt, response, None if answer is None else str(answer), parse_tool_spans(row, response, f"{path}:{lineno}")))
    if not records:
        raise DataError(f"{path}: no SFT rows in file")
    return records


def encode_response(
    tokenizer: Any, response: str, tool_spans: list[Span] | None = None, with_ends: bool = False
) -> tuple[list[int], list[bool], list[int]]:
    """(token ids, whether each token is the interpreter's, the character each token ends
    at: only ``with_ends``, which needs a fast tokenizer's offsets; else empty).

    Model text and tool text are encoded piece by piece, as the tool loop builds a
    response; tool text without special-token parsing (data/tool_spans.py)."""
    spans = output_block_spans(response) if tool_spans is None else tool_spans
    ids: list[int] = []
    is_tool: list[bool] = []
    ends: list[int] = []
    for start, end, tool in pieces(response, spans):
        options = dict(add_special_tokens=False, split_special_tokens=tool)
        if with_ends:
            encoded = tokenizer(response[start:end], return_offsets_mapping=True, **options)
            piece = list(encoded["input_ids"])
            ends += [start + e for _, e in encoded["offset_mapping"]]
        else:
            piece = list(tokenizer.encode(response[start:end], **options))
        ids += piece
        is_tool += [tool] * len(piece)
    return ids, is_tool, ends


def response_mask(tokenizer: Any, response: str, mask_tool_outputs: bool, tool_spans: list[Span] | None = None) -> tuple[list[int], list[int]]:
    """Token ids of ``response`` and a loss mask that zeroes the interpreter's text when asked."""
    ids, is_tool, _ = encode_response(tokenizer, response, tool_spans)
    return ids, [0 if tool and mask_tool_outputs else 1 for tool in is_tool]


def encode_sft_example(
    tokenizer: Any,
    prompt: str | list[dict[str, str]],
    response: str,
    template: str,
    mask_tool_outputs: bool = False,
    tool_spans: list[Span] | None = None,
) -> SFTExample:
    """Prompt ids (template applied) and response ids ending in EOS, with the response loss mask."""
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    else:
        text = render_prompt(template, prompt, tokenizer)
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    ids, mask = response_mask(tokenizer, response, mask_tool_outputs, tool_spans)
    return SFTExample(prompt_ids, ids + [tokenizer.eos_token_id], mask + [1])
