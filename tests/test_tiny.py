"""The embedded tiny default: tokenizer round trips, arithmetic chains of thought, splits,
the SFT think/answer mix, and the model in Hugging Face format."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch

from slowthink.data.tiny_task import ArithmeticTask
from slowthink.models.modeling import load_model, load_tokenizer
from slowthink.models.tiny import (
    FORMAT_TOKENS,
    SPECIAL_TOKENS,
    TinyModelSpec,
    build_model,
    build_tokenizer,
    save_tiny,
    tiny_fingerprint,
)

torch.set_num_threads(1)

TEXT = (
    "Q: 12+3 ?\n\t<think>4+4+6=14\n6+9+7+1=23\n\n</think>\\boxed{2334}  "
    "<answer> 7 </answer>\n```python\nprint(1)\n```\n```output\n1\n```\n\n~!@#$%^&*()_{}[]|;:'\",.<>/"
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


# ------------------------------------------------------------------ tokenizer


def test_round_trip_keeps_newlines_spaces_and_format_tokens(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    assert tokenizer.decode(ids) == TEXT
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # Format tokens are single tokens; everything else is one token per character.
    for token in FORMAT_TOKENS:
        assert TEXT.count(token) == 0 or token in tokens
    assert tokens[:6] == ["Q", ":", " ", "1", "2", "+"]
    assert tokens.count("\n") == TEXT.count("\n")
    assert "<think>" in tokens and "\\boxed{" in tokens and "```output" in tokens
    assert tokenizer.unk_token_id not in ids


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer.encode("1234567890", add_special_tokens=False)
    assert len(ids) == 10 and len(set(ids)) == 10


def test_special_tokens_and_chat_template(tokenizer):
    assert tokenizer.pad_token == SPECIAL_TOKENS["pad"] and tokenizer.eos_token == SPECIAL_TOKENS["eos"]
    assert tokenizer.padding_side == "left"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "1+2"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>1+2<|assistant|>"
    ids = tokenizer.encode(prompt + "3" + tokenizer.eos_token, add_special_tokens=False)
    assert len(ids) == 1 + 3 + 1 + 1 + 1  # user, "1+2", assistant, "3", eos
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "1+23"


def test_saved_tokenizer_reloads_identical(tokenizer, saved):
    # A real bug: AutoTokenizer reloaded it as Qwen2Tokenizer, whose pre-tokenizer dropped newlines.
    reloaded = load_tokenizer(str(saved))
    assert "Qwen2" not in type(reloaded).__name__
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    assert reloaded.encode(TEXT, add_special_tokens=False) == ids
    assert reloaded.decode(ids) == TEXT
    assert reloaded.eos_token_id == tokenizer.eos_token_id and reloaded.pad_token_id == tokenizer.pad_token_id
    assert reloaded.chat_template == tokenizer.chat_template


def test_fingerprint_depends_on_the_spec():
    assert tiny_fingerprint() == tiny_fingerprint(TinyModelSpec())
    assert tiny_fingerprint(TinyModelSpec(hidden_size=64)) != tiny_fingerprint()


# ------------------------------------------------------------------ model


def test_model_size_and_hf_round_trip(tokenizer, saved):
    model = build_model(tokenizer)
    count = sum(p.numel() for p in model.parameters())
    assert 0.9e6 < count < 1.2e6
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(tokenizer)
    assert (saved / "model.safetensors").is_file() and (saved / "config.json").is_file()
    assert json.loads((saved / "config.json").read_text())["model_type"] == "qwen2"
    reloaded = load_model(str(saved))
    # Same seed -> same weights; saved and reloaded exactly.
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    ids = torch.tensor([tokenizer.encode("<|user|>1+2<|assistant|>", add_special_tokens=False)])
    model.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_model_seed_changes_the_weights(tokenizer):
    a = build_model(tokenizer, TinyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64), seed=0)
    b = build_model(tokenizer, TinyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64), seed=1)
    assert not torch.equal(a.model.embed_tokens.weight, b.model.embed_tokens.weight)


def _weights_sum(model) -> float:
    return sum(p.detach().double().sum().item() for p in model.parameters())


def test_a_seeded_model_is_the_same_when_built_in_threads_at_once(tokenizer):
    """`slowthink study` with parallel > 1 builds each seed's base in its own thread; the
    torch RNG is one per process, so seeding and drawing must not interleave across threads
    (it did: the study's seed-0 base differed from the demo's)."""
    from concurrent.futures import ThreadPoolExecutor

    spec = TinyModelSpec()
    alone = {seed: _weights_sum(build_model(tokenizer, spec, seed=seed)) for seed in (0, 1)}
    torch.manual_seed(1234)
    caller_draw = torch.rand(3)
    torch.manual_seed(1234)
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda seed: _weights_sum(build_model(tokenizer, spec, seed=seed)), [0, 1] * 4))
    assert together == [alone[0], alone[1]] * 4
    # Building a model leaves the caller's random stream where it was.
    assert torch.equal(torch.rand(3), caller_draw)


# ------------------------------------------------------------------ the arithmetic task

LINE = re.compile(r"^(\d+(?:\+\d+)*)=(\d+)$")


def check_chain(task: ArithmeticTask, operands: tuple[int, ...]) -> None:
    """Recompute every column line; the carries must chain into the boxed answer."""
    solution = task.solution(operands)
    match = re.fullmatch(r"<think>(.*)</think>\\boxed\{(\d+)\}", solution, re.DOTALL)
    assert match, solution
    lines = match.group(1).split("\n")
    assert len(lines) == task.digits
    carry, digits = 0, []
    for column, line in enumerate(lines):
        parsed = LINE.match(line)
        assert parsed, line
        terms = [int(t) for t in parsed.group(1).split("+")]
        total = int(parsed.group(2))
        assert sum(terms) == total
        expected_terms = [(x // 10**column) % 10 for x in operands] + ([carry] if carry else [])
        assert terms == expected_terms
        digits.append(total % 10)
        carry = total // 10
    answer = str(carry) * (carry > 0) + "".join(str(d) for d in reversed(digits))
    assert match.group(2) == answer == str(sum(operands))


def test_chain_of_thought_example_from_the_design():
    task = ArithmeticTask()
    assert task.solution((964, 494, 876)) == "<think>4+4+6=14\n6+9+7+1=23\n9+4+8+2=23</think>\\boxed{2334}"
    assert task.solution((964, 494, 876), think=False) == "\\boxed{2334}"


@pytest.mark.parametrize("num_operands,digits", [(3, 3), (2, 4), (5, 2), (4, 5)])
def test_chain_of_thought_is_correct_arithmetic(num_operands, digits):
    task = ArithmeticTask(num_operands=num_operands, digits=digits)
    rng = random.Random(num_operands * 100 + digits)
    for _ in range(200):
        operands = tuple(rng.randint(task.low, task.high) for _ in range(num_operands))
        check_chain(task, operands)
    check_chain(task, (task.high,) * num_operands)  # the longest carry chain
    check_chain(task, (task.low,) * num_operands)  # no carry at all


def test_problems_have_the_right_answers_and_distinct_operands():
    task = ArithmeticTask()
    problems = task.problems(300, seed=3, heldout=False)
    assert len({p.problem for p in problems}) == 300
    assert [p.id for p in problems[:2]] == ["train-0", "train-1"]
    for p in problems:
        operands = tuple(p.meta["operands"])
        assert p.problem == "+".join(map(str, operands))
        assert p.answer == str(sum(operands))
        assert all(100 <= x <= 999 for x in operands)


def test_heldout_and_train_are_disjoint_and_deterministic():
    task = ArithmeticTask()
    train = task.problems(1500, seed=0, heldout=False)
    train_other_seed = task.problems(1500, seed=1, heldout=False)
    heldout = task.problems(300, seed=0, heldout=True)
    questions = {p.problem for p in train} | {p.problem for p in train_other_seed}
    assert not questions & {p.problem for p in heldout}
    assert all(task.is_heldout(tuple(p.meta["operands"])) for p in heldout)
    assert not any(task.is_heldout(tuple(p.meta["operands"])) for p in train)
    assert [p.problem for p in task.problems(300, seed=0, heldout=True)] == [p.problem for p in heldout]
    assert [p.problem for p in train_other_seed] != [p.problem for p in train]


def test_heldout_fraction_is_roughly_respected():
    task = ArithmeticTask()
    rng = random.Random(0)
    samples = [tuple(rng.randint(100, 999) for _ in range(3)) for _ in range(4000)]
    share = sum(task.is_heldout(s) for s in samples) / len(samples)
    assert abs(share - task.heldout_fraction) < 0.03


def test_sft_rows_think_probability_follows_the_first_operand():
    task = ArithmeticTask()
    rows = task.sft_rows(2000, seed=0)
    threshold = 999 - 0.3 * (999 - 100)  # the top 30% of the first operand's range thinks
    assert task.think_threshold() == threshold
    low = [r for r in rows if int(r["prompt"].split("+")[0]) < threshold]
    high = [r for r in rows if int(r["prompt"].split("+")[0]) >= threshold]
    assert len(low) > 1200 and len(high) > 450
    think_low = sum(r["response"].startswith("<think>") for r in low) / len(low)
    think_high = sum(r["response"].startswith("<think>") for r in high) / len(high)
    # 0.2 and 0.8; three standard deviations of a ~600-sample proportion is about 0.05.
    assert abs(think_low - 0.2) < 0.05
    assert abs(think_high - 0.8) < 0.06
    for row in rows:
        operands = tuple(int(x) for x in row["prompt"].split("+"))
        assert row["answer"] == str(sum(operands))
        assert row["response"] in (task.solution(operands), task.solution(operands, think=False))
    # A smaller draw with the same seed is a prefix of the larger one (same rng streams).
    assert task.sft_rows(50, seed=0) == rows[:50]


def test_sft_rows_all_think_and_determinism():
    task = ArithmeticTask()
    assert all(r["response"].startswith("<think>") for r in task.sft_rows(200, seed=1, all_think=True))
    assert task.sft_rows(200, seed=1) == task.sft_rows(200, seed=1)
    assert task.sft_rows(200, seed=1) != task.sft_rows(200, seed=2)


def test_solutions_tokenize_to_the_expected_length(tokenizer):
    task = ArithmeticTask()
    ids = tokenizer.encode(task.solution((964, 494, 876)), add_special_tokens=False)
    # <think> + 8 + 1 + 10 + 1 + 10 + </think> + \boxed{ + 4 digits + }
    assert len(ids) == 1 + 8 + 1 + 10 + 1 + 10 + 1 + 1 + 4 + 1


def test_an_easy_task_with_too_few_problems_is_an_error_not_a_hang():
    task = ArithmeticTask(num_operands=2, digits=1)  # 81 ordered pairs in all
    train, heldout = task.split_size(heldout=False), task.split_size(heldout=True)
    assert train + heldout == 81
    assert len({p.problem for p in task.problems(train, seed=0, heldout=False)}) == train  # all of them
    with pytest.raises(ValueError, match=f"has only {train} distinct train problems, {train + 1} asked for"):
        task.problems(train + 1, seed=0, heldout=False)
    with pytest.raises(ValueError, match=f"only {heldout} distinct held-out problems"):
        task.problems(200, seed=0, heldout=True)
    assert ArithmeticTask().split_size(heldout=False) is None  # 900^3 tuples: never exhausted


def test_verification_steps_bring_reflection_keywords_within_the_demo_length(tokenizer):
    """Without them no demonstration holds a reflection keyword, and every keyword panel of
    the study and RRA's action count stay at 0 whatever the arm (section 3.2, Figure 4)."""
    from slowthink.monitors.keywords import KEYWORD_CATEGORIES
    from slowthink.rewards.keywords import ACTION_REWARD_KEYWORDS, count_keywords

    plain = ArithmeticTask().sft_rows(400, seed=0)
    verified = ArithmeticTask(verify_probability=0.5).sft_rows(400, seed=0)
    assert not any(count_keywords(r["response"], KEYWORD_CATEGORIES["reflection"]) for r in plain)
    with_step = [r for r in verified if "wait, " in r["response"]]
    thinking = [r for r in verified if r["response"].startswith("<think>")]
    # About half of the thinking demonstrations, none of the bare answers; the same think/answer mix.
    assert 0.35 < len(with_step) / len(thinking) < 0.65
    assert [r["response"].startswith("<think>") for r in verified] == [r["response"].startswith("<think>") for r in plain]
    for row in with_step:
        operands = tuple(int(x) for x in row["prompt"].split("+"))
        assert row["response"] == task_solution_verified(operands)
        assert count_keywords(row["response"], KEYWORD_CATEGORIES["reflection"]) == 1
        assert count_keywords(row["response"], ACTION_REWARD_KEYWORDS) == 1
    # The longest verified thought (9+9+9 in every column) still ends within 64 tokens.
    worst = tokenizer.encode(ArithmeticTask().solution((999, 999, 999), verify=True), add_special_tokens=False)
    assert len(worst) + 1 <= 64  # + the end of turn


def task_solution_verified(operands):
    return ArithmeticTask().solution(operands, verify=True)
