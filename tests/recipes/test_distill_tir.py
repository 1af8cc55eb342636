"""``slowthink distill-tir``: the STILL-3-TOOL data pipeline (section 4.4).

The thing under test is the pipeline, so most tests use a scripted teacher that replays
known good text (what it says depends only on the prompt so far), the real tiny
tokenizer, a real sandbox and the exact-match checker. The tiny model itself runs the
command end to end (it solves nothing: the counts and the file format are checked)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import load_config
from slowthink.data.problems import DataError, Problem, write_problems
from slowthink.data.sft import encode_sft_example, load_sft_records, load_sft_rows
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.models.modeling import load_tokenizer
from slowthink.recipes.distill_tir import DistillTIRConfig, distill, progress_path
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig
from slowthink.sandbox import ProcessSandbox, SandboxConfig
from slowthink.tir.inject import INJECTION_PREFIXES
from slowthink.tir.teacher import TIRSampling

PLAIN = "<think>6 times 7 is 42. Wait, let me recheck: 6*7 = 42. Hmm, yes. But is that right? Yes.</think>\\boxed{42}"
PLAIN_PIECES = ["<think>6 times 7 is 42. ", "Wait, let me recheck: 6*7 = 42. ", "Hmm, yes. ", "But is that right? Yes.</think>\\boxed{42}"]
AFTER_OUTPUT = "\nThe code confirms 42. Wait, that matches. Hmm, good.</think>\\boxed{42}"
INSTRUCTED = "<think>I will compute it.\n```python\nprint(6 * 7)\n```\n```output"
CODE = "print(6 * 7)\n```"
# What the tool loop appends after the injected code: the default format's output block.
INJECTED_CELL = "\n```python\nprint(6 * 7)\n```\n```output\n42\n```\n"


def respond(prompt: str) -> str:
    """The scripted teacher: a function of the prompt (chat template + response so far)."""
    response = prompt.split("<|assistant|>")[-1]
    if response.endswith("```python\n"):  # injected: write the code
        if "NOFENCE" in prompt:
            return "print(6 * 7)\n"  # then EOS: the fence never closes
        return "print(6 / 0)\n```" if "ERROR" in prompt else CODE
    if "```output\n" in response:  # read the output, finish
        return AFTER_OUTPUT
    if "Python code" in prompt and "NOCODE" not in prompt:  # follows the instruction
        return INSTRUCTED
    return "<think>42.</think>\\boxed{42}" if "NOWORDS" in prompt else PLAIN


class ScriptedTeacher:
    """A Generator replaying ``respond``; honours stop strings (kept), EOS and the token limit."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.prompts: list[str] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        out = []
        for index, ids in enumerate(prompt_ids):
            prompt = self.tok.decode(list(ids))
            self.prompts.append(prompt)
            text, stop = respond(prompt), None
            hits = sorted((text.find(s) + len(s), s) for s in params.stop if s in text)
            if hits:
                end, stop = hits[0]
                text = text[:end]
            token_ids = self.tok.encode(text, add_special_tokens=False) + ([] if stop else [self.tok.eos_token_id])
            finish = "stop"
            if len(token_ids) > params.max_new_tokens:
                token_ids, finish, stop = token_ids[: params.max_new_tokens], "length", None
            text = self.tok.decode(token_ids, skip_special_tokens=True)
            out.extend(Completion(index, token_ids, [0.0] * len(token_ids), text, finish, stop_string=stop) for _ in range(params.n))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sandbox():
    with ProcessSandbox(SandboxConfig(preload=())) as box:
        yield box


def run(tmp_path: Path, problems: list[Problem], tokenizer, sandbox, out: str = "tir.jsonl", loop_config: ToolLoopConfig | None = None, **options):
    # The sampling keys (n, temperatures, tokens, injections) live in the config's `sampling` section.
    sampling = {"max_tokens": 400, **{k: options.pop(k) for k in list(options) if k in TIRSampling.model_fields}}
    cfg = DistillTIRConfig(
        data={"file": str(tmp_path / "problems.jsonl")},
        out=str(tmp_path / out),
        checker={"kind": "exact"},
        progress=False,
        sampling=TIRSampling(**sampling),
        **options,
    )
    teacher = ScriptedTeacher(tokenizer)
    totals = distill(problems, ToolLoop(teacher, sandbox, tokenizer, loop_config or ToolLoopConfig()), ExactMatchChecker(), cfg)
    rows = [json.loads(line) for line in (tmp_path / out).read_text().splitlines()]
    return rows, totals, teacher


PROBLEMS = [Problem("p1", "What is 6*7?", "42"), Problem("p2", "NOCODE What is 6*7?", "42"), Problem("p3", "What is 6*7, really?", "41")]


def test_both_paths_keep_executed_code_with_the_right_answer(tmp_path, tokenizer, sandbox):
    rows, totals, _ = run(tmp_path, PROBLEMS, tokenizer, sandbox, min_injections=1, max_injections=1)
    assert [(r["id"], r["source"], r["tool_calls"], r["tool_statuses"]) for r in rows] == [("p1", "instruct", 1, ["ok"]), ("p2", "inject", 1, ["ok"])]
    first, second = rows
    # The instruct path: the teacher's own code, run, its output spliced in, then its conclusion.
    assert first["messages"] == [
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": INSTRUCTED + "\n42\n```\n" + AFTER_OUTPUT},
    ]
    assert first["answer"] == "42" and "injections" not in first
    # The inject path: the plain thought cut at piece 2 or 3 of 4, a prefix, the code, its output, the rest.
    expected = {"".join(PLAIN_PIECES[:cut]) + prefix + INJECTED_CELL + AFTER_OUTPUT for cut in (2, 3) for prefix in INJECTION_PREFIXES}
    assert second["messages"][1]["content"] in expected and second["injections"] == 1
    # p3's gold is wrong: both paths drop it; p2's teacher ignored the instruction (no code).
    assert totals == Counter(
        {
            "instruct/generated": 3,
            "instruct/kept": 1,
            "instruct/dropped/no_code": 1,
            "instruct/dropped/wrong_answer": 1,
            "inject/generated": 2,
            "inject/kept": 1,
            "inject/dropped/wrong_answer": 1,
        }
    )


def test_rows_record_what_the_interpreter_wrote_and_sft_masks_exactly_that(tmp_path, tokenizer, sandbox):
    rows, _, _ = run(tmp_path, PROBLEMS, tokenizer, sandbox, min_injections=1, max_injections=1)
    instruct, inject = rows
    spoken = {row["source"]: [row["messages"][1]["content"][a:b] for a, b in row["tool_spans"]] for row in rows}
    # Instruct: the teacher wrote the output fence itself; the interpreter, the rest of the block.
    assert spoken["instruct"] == ["\n42\n```\n"]
    # Inject: the teacher stopped at its closing fence; the interpreter wrote the whole block.
    assert spoken["inject"] == ["\n```output\n42\n```\n"]
    records = load_sft_records(tmp_path / "tir.jsonl")
    for row, (prompt, response, _, spans) in zip(rows, records):
        example = encode_sft_example(tokenizer, prompt, response, "chat", mask_tool_outputs=True, tool_spans=spans)
        tokens = tokenizer.convert_ids_to_tokens(example.response_ids)
        assert "".join(t for t, m in zip(tokens, example.loss_mask) if m == 0) == "".join(spoken[row["source"]])


def test_still3_runs_a_teacher_that_follows_the_tool_prompt(tmp_path, tokenizer, sandbox):
    # The `tool` prompt asks for a ```output block; still3 stopped only at ```Output, so
    # the teacher's code never ran and every instructed response was unexecuted_code.
    rows, totals, _ = run(tmp_path, PROBLEMS[:1], tokenizer, sandbox, source="instruct", loop_config=ToolLoopConfig(preset="still3"))
    assert totals == Counter({"instruct/generated": 1, "instruct/kept": 1})
    assert rows[0]["tool_statuses"] == ["ok"] and rows[0]["messages"][1]["content"] == INSTRUCTED + "\n42\n```\n" + AFTER_OUTPUT


def test_a_printed_end_of_text_string_does_not_end_the_teachers_turn(tokenizer):
    from slowthink.tir.teacher import Candidate, encode_draft

    text = "```python\nprint('<|endof' + 'text|>')\n```\n```output\n<|endoftext|>\n```\nSo"
    start = text.index("```output") + len("```output")
    draft = Candidate(0, "inject", text, [{"status": "ok", "span": [start, text.index("So")]}])
    ids = encode_draft(tokenizer, draft)
    assert tokenizer.eos_token_id not in ids and tokenizer.decode(ids) == text


def test_the_openai_teacher_takes_its_tokenizer_from_model(tmp_path):
    # docs/tools.md: --served-model-name names the model on the server, --model its tokenizer.
    from contextlib import ExitStack

    from slowthink.recipes.distill_tir import build_teacher

    common = dict(
        data={"file": "d.jsonl"}, out="o.jsonl", backend={"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "served_model_name": "NAME"}
    )
    with ExitStack() as stack:
        _, tok, _ = build_teacher(DistillTIRConfig(**common, model="tiny"), stack)
        assert tok.convert_ids_to_tokens(tok.encode("```python", add_special_tokens=False)) == ["```python"]  # the tiny tokenizer
    with ExitStack() as stack, pytest.raises(Exception, match="NAME"):
        build_teacher(DistillTIRConfig(**common), stack)  # no --model: the served name is all there is


def test_the_output_is_sft_ready_as_is(tmp_path, tokenizer, sandbox):
    rows, _, _ = run(tmp_path, PROBLEMS, tokenizer, sandbox)
    pairs = load_sft_rows(tmp_path / "tir.jsonl")
    assert [messages for messages, _ in pairs] == [[r["messages"][0]] for r in rows]
    example = encode_sft_example(tokenizer, pairs[0][0], pairs[0][1], "chat", mask_tool_outputs=True)
    assert 0 < sum(example.loss_mask) < len(example.loss_mask)  # the output block is masked when asked
    config = load_config(
        SFTConfig,
        None,
        [
            f"run.output_dir={tmp_path / 'sft'}",
            "run.torch_threads=1",
            "run.progress=false",
            "data.source=jsonl",
            f"data.train_file={tmp_path / 'tir.jsonl'}",
            "train.steps=1",
            "train.batch_size=2",
            "train.micro_batch_size=2",
        ],
    )
    assert (run_sft(config) / "metrics.jsonl").is_file()


def test_injection_repeats_after_the_last_output_and_is_deterministic(tmp_path, tokenizer, sandbox):
    problems = [Problem("q", "What is 6*7?", "42")]
    rows, totals, teacher = run(tmp_path, problems, tokenizer, sandbox, source="inject", min_injections=2, max_injections=2)
    (row,) = rows
    text = row["messages"][1]["content"]
    assert row["injections"] == 2 and row["tool_statuses"] == ["ok", "ok"]
    assert text.count(INJECTED_CELL) == 2 and text.endswith("</think>\\boxed{42}")
    # The second cut falls after the first output block: the first cell is kept whole.
    first_cell_end = text.index(INJECTED_CELL) + len(INJECTED_CELL)
    assert text[first_cell_end:].startswith("\nThe code confirms 42. ")
    assert totals == Counter({"inject/generated": 1, "inject/kept": 1})
    again, _, _ = run(tmp_path, problems, tokenizer, sandbox, out="again.jsonl", source="inject", min_injections=2, max_injections=2)
    assert again == rows


def test_sampling_settings_of_each_step(tmp_path, tokenizer, sandbox):
    """The thought and continuations at T = 0.6, top-p 0.95; code at T = 1.0 up to its closing fence."""
    calls: list[SamplingParams] = []

    class Recording(ScriptedTeacher):
        def generate(self, prompt_ids, params):
            calls.append(params)
            return super().generate(prompt_ids, params)

    cfg = DistillTIRConfig(
        data={"file": "unused"},
        out=str(tmp_path / "o.jsonl"),
        checker={"kind": "exact"},
        progress=False,
        source="inject",
        sampling=TIRSampling(min_injections=1, max_injections=1, max_tokens=5000),
    )
    distill(PROBLEMS[:1], ToolLoop(Recording(tokenizer), sandbox, tokenizer), ExactMatchChecker(), cfg)
    plain, code, continuation = calls
    assert (plain.temperature, plain.top_p, plain.stop) == (0.6, 0.95, ())
    assert (code.temperature, code.top_p, code.stop, code.max_new_tokens) == (1.0, 1.0, ("```",), 1024)
    assert (continuation.temperature, continuation.top_p) == (0.6, 0.95) and "```output" in continuation.stop


def test_failed_injections_are_counted_by_reason(tmp_path, tokenizer, sandbox):
    problems = [Problem("a", "NOFENCE 6*7", "42"), Problem("b", "ERROR 6*7", "42"), Problem("c", "NOWORDS 6*7", "42")]
    rows, totals, _ = run(tmp_path, problems, tokenizer, sandbox, source="inject", min_injections=1, max_injections=1)
    assert rows == []
    assert totals == Counter(
        {"inject/generated": 3, "inject/dropped/code_unfinished": 1, "inject/dropped/no_successful_code": 1, "inject/dropped/no_split_point": 1}
    )


def test_a_response_over_its_token_budget_is_dropped(tmp_path, tokenizer, sandbox):
    # Over every cut and prefix, in tokens: the spliced thought is 112-135, with the cell
    # 134-157, with the conclusion 192-215.
    _, totals, _ = run(tmp_path, PROBLEMS[:1], tokenizer, sandbox, source="inject", max_tokens=100, min_injections=1, max_injections=1)
    assert totals == Counter({"inject/generated": 1, "inject/dropped/too_long": 1})
    _, totals, _ = run(tmp_path, PROBLEMS[:1], tokenizer, sandbox, out="t.jsonl", source="inject", max_tokens=180, min_injections=1, max_injections=1)
    assert totals == Counter({"inject/generated": 1, "inject/dropped/truncated": 1})


def test_resume_skips_problems_done_before_kept_or_not(tmp_path, tokenizer, sandbox):
    rows, totals, _ = run(tmp_path, PROBLEMS[:2], tokenizer, sandbox, source="instruct")
    assert [r["id"] for r in rows] == ["p1"] and totals["instruct/generated"] == 2
    # A kill mid-write leaves half a line: it is dropped and that problem is done again.
    progress = progress_path(tmp_path / "tir.jsonl")
    progress.write_text(progress.read_text() + '{"id": "p3", "coun')
    rows, totals, teacher = run(tmp_path, PROBLEMS, tokenizer, sandbox, source="instruct")
    assert {p.split("<|user|>")[1].split("<|assistant|>")[0].split("\n")[0] for p in teacher.prompts} == {"What is 6*7, really?"}
    assert [r["id"] for r in rows] == ["p1"]
    assert totals == Counter({"instruct/generated": 3, "instruct/kept": 1, "instruct/dropped/no_code": 1, "instruct/dropped/wrong_answer": 1})


def invoke(*args: str):
    return CliRunner().invoke(app, ["distill-tir", *args], catch_exceptions=False)


def test_tiny_teacher_end_to_end_writes_a_well_formed_file_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    data, out = tmp_path / "sums.jsonl", tmp_path / "tir.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=1).problems(3, seed=1, heldout=True))
    args = ["--data", str(data), "--out", str(out), "--max-tokens", "24", "--checker", "exact"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "3 problems, 0 done before, 3 to do" in result.output
    for line in out.read_text().splitlines():  # the untrained model solves nothing: usually empty
        row = json.loads(line)
        assert row["messages"][1]["role"] == "assistant" and row["tool_calls"] >= 1
    totals: Counter = Counter()
    for line in progress_path(out).read_text().splitlines():
        totals.update(json.loads(line)["counts"])
    assert totals["instruct/generated"] == 3
    for path in ("instruct", "inject"):
        dropped = sum(v for k, v in totals.items() if k.startswith(f"{path}/dropped/"))
        assert totals[f"{path}/generated"] == totals[f"{path}/kept"] + dropped
    # Inject runs for exactly the problems the instruct path kept nothing for.
    assert totals["inject/generated"] == 3 - len({json.loads(x)["id"] for x in out.read_text().splitlines() if json.loads(x)["source"] == "instruct"})
    assert f"instruct: 3 generated, {totals['instruct/kept']} kept" in result.output
    result = invoke(*args)
    assert result.exit_code == 0 and "3 problems, 3 done before, 0 to do" in result.output


def test_malformed_input_row_and_bad_options_are_clear_errors(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "1", "problem": "1+1", "answer": "2"}\n{"id": "2", "problem": "2+2"}\n')
    result = invoke("--data", str(data), "--out", str(tmp_path / "o.jsonl"), "--checker", "exact")
    assert result.exit_code == 2 and f"{data}:2: missing field(s) answer" in result.output  # a user's mistake
    result = invoke("--data", str(data), "--out", "o.jsonl", "--backend", "openai")
    assert result.exit_code == 2 and "--backend openai needs --base-url" in result.output
    result = invoke("--data", str(data), "--out", "o.jsonl", "sampling.min_injections=3", "sampling.max_injections=1")
    assert result.exit_code == 2 and "need 0 <= min_injections <= max_injections, got 3 and 1" in result.output
    result = invoke("--data", str(data), "--out", "o.jsonl", "--source", "teacher")
    assert result.exit_code == 2 and "source" in result.output and "instruct" in result.output
    result = invoke("--data", str(data), "--out", "o.jsonl", "instruct_template=nope")
    assert result.exit_code == 2 and "instruct_template 'nope' unknown" in result.output


def test_an_output_file_that_is_not_ours_is_refused(tmp_path, tokenizer, sandbox):
    (tmp_path / "tir.jsonl").write_text('{"prompt": "x", "response": "y"}\n')
    with pytest.raises(DataError, match=r"tir.jsonl:1: not a distill-tir row"):
        run(tmp_path, PROBLEMS[:1], tokenizer, sandbox)


def test_a_cut_drops_the_cells_of_the_text_it_drops():
    # A cell run after </think> sits past every cut point; a later injection cuts it away,
    # and its record must go too (its span would point past the new text).
    import random

    from slowthink.tir.teacher import Candidate, _cut

    thought = "<think>6 times 7. Wait, 42. But check.</think>"
    after = "\n```python\nprint(42)\n```\n```output\n42\n```\n\\boxed{42}"
    text = thought + after
    start = text.index("```output") + len("```output")
    draft = Candidate(0, "inject", text, [{"status": "ok", "span": [start, start + len("\n42\n```\n")]}], injections_left=1)
    assert _cut(draft, random.Random(0))
    assert draft.tool_calls == [] and "\\boxed" not in draft.text
