"""SFT rows -> token ids and loss masks (response only; tool outputs maskable), with the
tiny character tokenizer so every position can be checked by hand."""

from __future__ import annotations

import json

import pytest

from slowthink.data.problems import DataError
from slowthink.data.sft import encode_sft_example, load_sft_records, load_sft_rows, response_mask
from slowthink.models.tiny import build_tokenizer

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


def masked_text(tok, ids, mask) -> str:
    return "".join(t for t, m in zip(tok.convert_ids_to_tokens(ids), mask) if m == 0)


def test_mask_tool_outputs_masks_what_the_interpreter_wrote_not_the_models_fence(tok):
    ids, mask = response_mask(tok, TOOL_RESPONSE, mask_tool_outputs=True)
    tokens = tok.convert_ids_to_tokens(ids)
    # The model writes "```output" to hand over to the interpreter (the tool loop stops
    # there): an action to learn. The interpreter adds "\n", the output, "\n```\n".
    assert masked_text(tok, ids, mask) == "\n1\n```\n"
    start = tokens.index("```output")
    assert mask == [1] * (start + 1) + [0] * 5 + [1]
    assert tokens[start + 6 :] == ["B"]
    # Masking changes only the mask, never the ids.
    plain_ids, plain_mask = response_mask(tok, TOOL_RESPONSE, mask_tool_outputs=False)
    assert plain_ids == ids and plain_mask == [1] * len(ids)


def test_mask_tool_outputs_handles_several_blocks_and_the_still3_fence(tok):
    response = "x```output\n12\n```\ny```Output\nab\n```\nz"
    ids, mask = response_mask(tok, response, mask_tool_outputs=True)
    kept = "".join(t for t, m in zip(tok.convert_ids_to_tokens(ids), mask) if m == 1)
    assert kept == "x```outputy```Outputz"
    assert masked_text(tok, ids, mask) == "\n12\n```\n\nab\n```\n"


def test_a_fence_inside_a_tool_output_does_not_end_its_mask(tok):
    # The old pattern ended the block at the first ``` after the fence, so "b" and the rest
    # of this output were trained as if the model had written them.
    response = "```python\nprint('a```b')\n```\n```output\na```b\n```\nSo \\boxed{1}"
    ids, mask = response_mask(tok, response, mask_tool_outputs=True)
    assert masked_text(tok, ids, mask) == "\na```b\n```\n"


def test_recorded_tool_spans_are_masked_exactly(tok):
    # A code block closed by a blank line: the loop wrote the whole output block, its
    # fence included. The recorded span says so; text rules could not.
    response = "A\n```python\nprint(7)\n```\n\n```output\n7\n```\nB"
    start = response.index("```output")
    span = (start, start + len("```output\n7\n```\n"))
    ids, mask = response_mask(tok, response, mask_tool_outputs=True, tool_spans=[span])
    assert masked_text(tok, ids, mask) == response[span[0] : span[1]]
    assert tok.decode(ids) == response
    # Without spans, the fallback leaves the fence to the model.
    ids, mask = response_mask(tok, response, mask_tool_outputs=True)
    assert masked_text(tok, ids, mask) == "\n7\n```\n"


@pytest.mark.parametrize("spans", [[(0, 0)], None])
def test_a_printed_end_of_text_token_stays_text(tok, spans):
    # A cell printed "<|endoftext|>": parsed as a special token, it would be a real EOS in
    # the middle of the response, and the student would learn to stop there.
    response = "```python\nprint('<|endof' + 'text|>')\n```\n```output\n<|endoftext|>\n```\nDone."
    if spans is not None:
        start = response.index("```output") + len("```output")
        spans = [(start, response.index("Done."))]
    example = encode_sft_example(tok, "q", response, "plain", tool_spans=spans)
    assert tok.eos_token_id not in example.response_ids[:-1]
    assert tok.decode(example.response_ids[:-1]) == response
    assert example.response_ids[-1] == tok.eos_token_id


@pytest.mark.parametrize(
    "spans,message",
    [
        ("x", "must be a list of [start, end] pairs"),
        ([[0, 1, 2]], "is not a [start, end] pair of integers"),
        ([[3, 999]], "outside the response's 5 characters"),
        ([[2, 4], [1, 3]], "spans must be sorted"),
    ],
)
def test_bad_tool_spans_name_file_and_line(tmp_path, spans, message):
    path = write_rows(
        tmp_path, [{"prompt": "p", "response": "hello", "tool_spans": [[1, 2]]}, {"prompt": "p", "response": "hello", "tool_spans": spans}]
    )
    with pytest.raises(DataError) as info:
        load_sft_records(path)
    assert str(info.value).startswith(f"{path}:2: ") and message in str(info.value)


def test_tool_spans_are_read_with_the_row(tmp_path):
    path = write_rows(tmp_path, [{"prompt": "p", "response": "hello", "tool_spans": [[1, 2], [3, 5]]}, {"prompt": "p", "response": "r"}])
    assert [record[3] for record in load_sft_records(path)] == [[(1, 2), (3, 5)], None]
