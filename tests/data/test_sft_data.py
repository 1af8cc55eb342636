"""SFT rows -> token ids and loss masks (response only; tool outputs maskable), with the
tiny character tokenizer so every position can be checked by hand."""

from __future__ import annotations

import json

import pytest

from slowthink.data.problems import DataError
from slowthink.data.sft import encode_sft_example, load_sft_rows, response_mask
from slowthink.tiny import build_tokenizer

TOOL_RESPONSE = "A```python\nprint(1)\n```\n```output\n1\n```\nB"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def write_rows(tmp_path, rows: list) -> str:
    path = tmp_path / "sft.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------ reading rows


def test_prompt_response_and_messages_rows(tmp_path):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    path = write_rows(tmp_path, [{"prompt": "1+2", "response": "3", "extra": 1}, "", {"messages": messages}])
    rows = load_sft_rows(path)
    assert rows == [("1+2", "3"), (messages[:3], "d")]


@pytest.mark.parametrize(
    "bad,message",
    [
        ('{"prompt": "p"', "not valid JSON"),
        ({"prompt": "p"}, "missing or non-string field(s) response"),
        ({"response": "r"}, "missing or non-string field(s) prompt"),
        ({"prompt": 1, "response": "r"}, "missing or non-string field(s) prompt"),
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"messages": "hi"}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "user"}]}, "'messages' must be a non-empty list of {'role', 'content'} objects"),
        ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}, "the last message must be the assistant's"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, bad, message):
    path = write_rows(tmp_path, [{"prompt": "p", "response": "r"}, bad])
    with pytest.raises(DataError) as info:
        load_sft_rows(path)
    assert str(info.value).startswith(f"{path}:2: ")
    assert message in str(info.value)


def test_empty_file_is_an_error(tmp_path):
    path = write_rows(tmp_path, ["", "  "])
    with pytest.raises(DataError, match="no SFT rows"):
        load_sft_rows(path)


# ------------------------------------------------------------------ encoding


def test_prompt_response_example_loss_on_response_and_eos(tok):
    example = encode_sft_example(tok, "1+2", "<think>1+2=3</think>\\boxed{3}", template="chat")
    assert tok.convert_ids_to_tokens(example.prompt_ids) == ["<|user|>", "1", "+", "2", "<|assistant|>"]
    assert tok.decode(example.response_ids[:-1]) == "<think>1+2=3</think>\\boxed{3}"
    assert example.response_ids[-1] == tok.eos_token_id
    assert example.loss_mask == [1] * len(example.response_ids)
    # <think>, 1, +, 2, =, 3, </think>, \boxed{, 3, }, eos
    assert len(example.response_ids) == 11


def test_messages_example_uses_the_chat_template_for_everything_before_the_answer(tok):
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    example = encode_sft_example(tok, messages, "d", template="plain")
    assert tok.decode(example.prompt_ids) == "<|user|>a<|assistant|>b<|endoftext|><|user|>c<|assistant|>"
    assert example.response_ids == tok.encode("d", add_special_tokens=False) + [tok.eos_token_id]
    assert example.loss_mask == [1, 1]


def test_templates_apply_to_prompt_rows(tok):
    assert tok.decode(encode_sft_example(tok, "q", "r", template="plain").prompt_ids) == "q"
    assert tok.decode(encode_sft_example(tok, "q", "r", template="r1_zero").prompt_ids).endswith("User: q\n\nAssistant:\n<think>")


def test_mask_tool_outputs_masks_exactly_the_output_block(tok):
    ids, mask = response_mask(tok, TOOL_RESPONSE, mask_tool_outputs=True)
    tokens = tok.convert_ids_to_tokens(ids)
    masked = [t for t, m in zip(tokens, mask) if m == 0]
    # The block from the opening fence to the closing fence; the code block and the text stay.
    assert masked == ["```output", "\n", "1", "\n", "```"]
    start = tokens.index("```output")
    assert mask == [1] * start + [0] * 5 + [1] * (len(tokens) - start - 5)
    assert tokens[start - 2 : start] == ["```", "\n"] and tokens[start + 5 :] == ["\n", "B"]
    # Masking changes only the mask, never the ids.
    plain_ids, plain_mask = response_mask(tok, TOOL_RESPONSE, mask_tool_outputs=False)
    assert plain_ids == ids and plain_mask == [1] * len(ids)


def test_mask_tool_outputs_handles_several_blocks_and_the_still3_fence(tok):
    response = "x```output\n12\n```y```Output\nab\n```z"
    ids, mask = response_mask(tok, response, mask_tool_outputs=True)
    tokens = tok.convert_ids_to_tokens(ids)
    kept = "".join(t for t, m in zip(tokens, mask) if m == 1)
    assert kept == "xyz"
    # "```output" is one format token; "```Output" is "```" plus six letters: 6 + 12 masked tokens.
    assert sum(1 - m for m in mask) == 6 + 12
