"""Long-CoT cold-start data: the trace filter and the max-length policy (never a silent cut)."""

from __future__ import annotations

import pytest

from slowthink.data.long_cot import DataStats, answer_char_index, answer_token_index, fit_to_length, incorrect_traces, trace_rejection
from slowthink.data.sft import encode_sft_example
from slowthink.models.tiny import build_tokenizer
from slowthink.rewards.verdict import ExactMatchChecker


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


RESPONSE = "<think>1+2=3</think>\\boxed{3}"


def test_answer_starts_at_the_closing_think_else_the_last_box():
    assert answer_char_index(RESPONSE) == RESPONSE.index("</think>")
    assert answer_char_index("so \\boxed{2} no \\boxed{3}") == len("so \\boxed{2} no ")
    assert answer_char_index("no answer here") is None


def test_fitting_examples_are_untouched_and_long_ones_dropped(tok):
    example = encode_sft_example(tok, "1+2", RESPONSE, "chat")
    total = len(example.prompt_ids) + len(example.response_ids)
    assert fit_to_length(example, total, "drop", None) is example
    assert fit_to_length(example, total - 1, "drop", answer_token_index(tok, RESPONSE)) is None


def test_mask_keeps_the_reasoning_that_fits_and_never_the_cut_answer(tok):
    example = encode_sft_example(tok, "1+2", RESPONSE, "chat")
    answer_at = answer_token_index(tok, RESPONSE)
    assert tok.convert_ids_to_tokens(example.response_ids[answer_at : answer_at + 1]) == ["</think>"]
    # Cut inside the answer: the thought is trained, the answer and EOS are not.
    limit = len(example.prompt_ids) + answer_at + 2
    fitted = fit_to_length(example, limit, "mask", answer_at)
    assert len(fitted.prompt_ids) + len(fitted.response_ids) == limit
    assert fitted.loss_mask == [1] * answer_at + [0, 0]
    assert tok.eos_token_id not in fitted.response_ids
    # Cut inside the thought: the part that fits is trained.
    fitted = fit_to_length(example, len(example.prompt_ids) + 3, "mask", answer_at)
    assert fitted.loss_mask == [1, 1, 1]
    # Nothing of the response fits: dropped.
    assert fit_to_length(example, len(example.prompt_ids), "mask", answer_at) is None


def test_trace_length_and_correctness_filters():
    assert trace_rejection(5, min_tokens=10, max_tokens=None) == "too_short"
    assert trace_rejection(50, min_tokens=10, max_tokens=40) == "too_long"
    assert trace_rejection(20, min_tokens=10, max_tokens=40) is None
    wrong = incorrect_traces(ExactMatchChecker(), ["3", "4", None], [RESPONSE, RESPONSE, "anything"])
    assert wrong == [False, True, False]


def test_stats_are_metrics():
    stats = DataStats(rows=4, kept=2, truncated_masked=1)
    stats.drop("incorrect")
    stats.drop("incorrect")
    assert stats.metrics() == {"data/rows": 4.0, "data/kept": 2.0, "data/truncated_masked": 1.0, "data/dropped_incorrect": 2.0}


@pytest.mark.parametrize("spans", ["recorded", None])
def test_the_answer_token_indexes_the_ids_sft_trains_on_after_a_printed_special_token(tok, spans):
    # The interpreter's text is encoded as untrusted text, so a printed <|endoftext|> is 13
    # character tokens, not 1: the answer's token index must count them the same way.
    response = "<think>```python\nprint(1)\n```\n```output\n<|endoftext|>\n```\n</think>\\boxed{1}"
    start = response.index("```output") + len("```output")
    tool_spans = [(start, response.index("</think>"))] if spans else None
    example = encode_sft_example(tok, "q", response, "chat", tool_spans=tool_spans)
    answer_at = answer_token_index(tok, response, tool_spans)
    assert tok.convert_ids_to_tokens(example.response_ids[answer_at : answer_at + 1]) == ["</think>"]
