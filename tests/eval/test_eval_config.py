"""``slowthink eval``'s nested config: the sections, the defaults on the fields, the old flat
keys named where they went, every flag setting the key it always set, and run.json resume."""

from __future__ import annotations

import json
from pathlib import Path

import cli_flags
import pytest
from cli_flags import at
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import ConfigError, load_config
from slowthink.eval.runner import Decoding
from slowthink.recipes.common_config import BackendConfig
from slowthink.recipes.distill_tir import DistillTIRConfig
from slowthink.recipes.eval_config import MOVED_KEYS, EvalConfig, EvalSamplingConfig
from slowthink.recipes.evaluate import RESUME_KEYS, check_resume

URL = "http://127.0.0.1:8000/v1"


def printed_config(*args: str, env: dict[str, str] | None = None) -> dict:
    return cli_flags.printed_config("eval", *args, env=env)


# Every flag `slowthink eval` had before its keys were nested: (arguments, the key it sets, the value).
# The arguments start from --data x.jsonl unless they give the problems themselves.
FLAG_CASES = [
    (["--model", "some/dir"], "model", "some/dir"),
    (["--tokenizer", "tok/dir"], "tokenizer", "tok/dir"),
    (["-b", "math500", "--benchmark", "aime24"], "data.benchmarks", ["math500", "aime24"]),
    (["--data", "mine.jsonl"], "data.file", "mine.jsonl"),
    (["--data-dir", "copies"], "data.benchmark_dir", "copies"),
    (["--mode", "sampled"], "sampling.mode", "sampled"),
    (["--mode", "sampled", "--n", "4"], "sampling.n", 4),
    (["--mode", "sampled", "--temperature", "0.7"], "sampling.temperature", 0.7),
    (["--mode", "sampled", "--top-p", "0.9"], "sampling.top_p", 0.9),
    (["--max-tokens", "100"], "sampling.max_tokens", 100),
    (["--template", "plain"], "data.template", "plain"),
    (["--backend", "vllm"], "backend.kind", "vllm"),
    (["--backend", "openai", "--base-url", URL], "backend.base_url", URL),
    (["--backend", "openai", "--base-url", URL, "--api-key", "k"], "backend.api_key", "k"),
    (["--backend", "openai", "--base-url", URL, "--concurrency", "3"], "backend.concurrency", 3),
    (["--batch-size", "5"], "backend.batch_size", 5),
    (["--checker", "exact"], "checker.kind", "exact"),
    (["--out", "elsewhere"], "out", "elsewhere"),
    (["--limit", "3"], "data.limit", 3),
    (["--seed", "7"], "sampling.seed", 7),
    (["--mode", "sampled", "--pass-k", "2", "--pass-k", "3"], "pass_k", [2, 3]),
    (["--no-progress"], "progress", False),
    (["--progress"], "progress", True),
    (["--tools", "python"], "tools.kind", "python"),
    (["--tools", "python", "--tool-preset", "still3"], "tools.preset", "still3"),
    (["--tools", "python", "--max-tool-calls", "2"], "tools.max_tool_calls", 2),
    (["--tools", "python", "--tools-no-exec"], "tools.execute", False),
    (["--tools", "python", "--tools-exec"], "tools.execute", True),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAG_CASES, ids=[" ".join(case[0]) for case in FLAG_CASES])
def test_every_flag_sets_the_same_value_at_its_nested_key(args, key, value):
    problems = [] if {"-b", "--data"} & set(args) else ["--data", "x.jsonl"]
    assert at(printed_config(*problems, *args), key) == value


def test_the_api_key_flag_still_reads_openai_api_key():
    printed = printed_config("--data", "x.jsonl", "--backend", "openai", "--base-url", URL, env={"OPENAI_API_KEY": "from-env"})
    assert printed["backend"]["api_key"] == "from-env"


def test_the_flag_cases_cover_every_flag_of_the_command():
    assert cli_flags.declared_options("eval") == cli_flags.tested_options(FLAG_CASES)


def test_flat_keys_name_their_new_place():
    with pytest.raises(ConfigError, match=r"'n' is now 'sampling\.n'.*'answer_fallback' is now 'checker\.answer_fallback'"):
        load_config(EvalConfig, None, ["n=4", "answer_fallback=true"], {"data.file": "x.jsonl"})
    # A section's own name with a plain value is the old flat key: backend=openai, data=FILE.
    with pytest.raises(ConfigError, match=r"'backend' is now 'backend\.kind'"):
        load_config(EvalConfig, None, ["backend=openai"], {"data.file": "x.jsonl"})
    with pytest.raises(ValueError, match=r"'data' is now 'data\.file'"):
        EvalConfig.model_validate({"data": "x.jsonl"})
    # A mapping under a key that is not a section (columns) is old too.
    with pytest.raises(ConfigError, match=r"'columns' is now 'data\.columns'"):
        load_config(EvalConfig, None, ["columns={problem: question}"], {"data.file": "x.jsonl"})
    # The flat config had 33 keys: five stayed at the top, the rest are listed; each new key exists.
    stayed = {"model", "tokenizer", "out", "pass_k", "progress"}
    assert len(MOVED_KEYS) + len(stayed) == 33 and stayed <= set(EvalConfig.model_fields)
    for new in MOVED_KEYS.values():
        section, field = new.split(" ")[0].split(".")
        assert field in EvalConfig.model_fields[section].annotation.model_fields


def test_an_old_flat_yaml_file_names_the_new_keys(tmp_path):
    old = tmp_path / "eval.yaml"
    old.write_text("benchmarks: [math500]\nmode: sampled\ntensor_parallel_size: 2\n")
    with pytest.raises(ConfigError) as error:
        load_config(EvalConfig, old)
    message = str(error.value)
    for before, after in (("benchmarks", "data.benchmarks"), ("mode", "sampling.mode"), ("tensor_parallel_size", "backend.tensor_parallel_size")):
        assert f"'{before}' is now '{after}'" in message
    assert "slowthink config eval" in message


def test_a_misspelt_nested_key_gets_the_loaders_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'sampling\.temprature' \(did you mean 'sampling\.temperature'\?\)"):
        load_config(EvalConfig, None, ["sampling.temprature=0.5"], {"data.file": "x.jsonl"})
    # Misspelt at the top, as the flat key was: the suggestion is the nested key.
    with pytest.raises(ConfigError, match=r"unknown key 'temprature' \(did you mean 'sampling\.temperature'\?\)"):
        load_config(EvalConfig, None, ["temprature=0.5"], {"data.file": "x.jsonl"})
    # Closer to a key at the top (model, not the old mode): the loader's own suggestion.
    with pytest.raises(ConfigError, match=r"unknown key 'modle' \(did you mean 'model'\?\)"):
        load_config(EvalConfig, None, ["modle=x"], {"data.file": "x.jsonl"})
    # Nothing close: the loader lists the keys allowed at the top.
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'; allowed keys here: backend, checker, data, model, out"):
        load_config(EvalConfig, None, ["zzz=1"], {"data.file": "x.jsonl"})


def test_sampled_defaults_are_the_fields_defaults_and_the_papers():
    fields = EvalSamplingConfig.model_fields
    # Paper, section 4.4: sampled evaluation at n = 8, T = 0.6, top-p 0.95.
    assert (fields["n"].default, fields["temperature"].default, fields["top_p"].default) == (8, 0.6, 0.95)
    sampled = EvalConfig(data={"file": "x.jsonl"}, sampling={"mode": "sampled"})
    assert sampled.decoding() == Decoding(n=8, temperature=0.6, top_p=0.95, max_tokens=32768, seed=0)
    # One field given, the others keep their defaults.
    assert EvalConfig(data={"file": "x.jsonl"}, sampling={"mode": "sampled", "n": 5}).decoding().temperature == 0.6


def test_greedy_is_one_sample_at_temperature_0_and_prints_what_runs():
    cfg = EvalConfig(data={"file": "x.jsonl"})
    assert cfg.decoding() == Decoding(n=1, temperature=0.0, top_p=1.0, max_tokens=32768, seed=0)
    printed = printed_config("--data", "x.jsonl")
    assert {k: printed["sampling"][k] for k in ("mode", "n", "temperature", "top_p")} == {"mode": "greedy", "n": 1, "temperature": 0.0, "top_p": 1.0}
    # Greedy's own values may be given explicitly.
    assert EvalConfig(data={"file": "x.jsonl"}, sampling={"n": 1, "temperature": 0, "top_p": 1}).decoding() == cfg.decoding()


@pytest.mark.parametrize("given", [["--n", "4"], ["--temperature", "0.6"], ["--top-p", "0.95"], ["sampling.n=4"]])
def test_greedy_with_a_sampled_value_is_refused(given):
    result = CliRunner().invoke(app, ["eval", "--data", "x.jsonl", *given])
    assert result.exit_code == 2
    assert "--n/--temperature/--top-p need --mode sampled" in result.output
    assert given[-1].split("=")[-1] in result.output  # the value given is named


def test_a_printed_sampled_config_loads_back(tmp_path):
    printed = CliRunner().invoke(app, ["eval", "--data", "x.jsonl", "--mode", "sampled", "--n", "5", "--print-config"]).output
    (tmp_path / "c.yaml").write_text(printed)
    assert load_config(EvalConfig, tmp_path / "c.yaml").decoding().n == 5


def test_eval_and_distill_tir_share_one_backend_section():
    eval_backend = EvalConfig.model_fields["backend"].annotation
    teacher = DistillTIRConfig.model_fields["backend"].annotation
    assert issubclass(eval_backend, BackendConfig) and issubclass(teacher, BackendConfig)
    shared = set(BackendConfig.model_fields)
    assert shared <= set(eval_backend.model_fields) and shared <= set(teacher.model_fields)
    with pytest.raises(ConfigError, match="--backend openai needs --base-url"):
        load_config(EvalConfig, None, ["backend.kind=openai"], {"data.file": "x.jsonl"})


def test_a_run_json_written_by_the_flat_version_resumes(tmp_path):
    """The settings the flat EvalConfig recorded (eval 2026-11, sampled mode with tools) match
    the nested config's, key for key: that folder resumes, and run.json keeps its flat keys."""
    identity = {"model": {"name": "tiny"}}
    flat = {
        "model": "tiny",
        "model_identity": identity,
        "template": "chat",
        "mode": "sampled",
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 100,
        "seed": 3,
        "checker": "exact",
        "answer_fallback": True,
        "tools": "python",
        "tool_preset": "still3",
        "max_tool_calls": 2,
        "tools_execute": False,
        "backend": "hf",
        "n": 8,
    }
    (tmp_path / "run.json").write_text(json.dumps(flat))
    cfg = EvalConfig(
        data={"file": "x.jsonl"},
        sampling={"mode": "sampled", "max_tokens": 100, "seed": 3},
        checker={"kind": "exact", "answer_fallback": True},
        tools={"kind": "python", "preset": "still3", "max_tool_calls": 2, "execute": False},
    )
    check_resume(tmp_path, cfg, cfg.decoding(), identity)
    assert json.loads((tmp_path / "run.json").read_text()) == flat
    assert set(RESUME_KEYS) <= set(flat)
    # One setting changed is still refused, naming the flat key.
    other = cfg.model_copy(update={"sampling": cfg.sampling.model_copy(update={"seed": 4})})
    with pytest.raises(ConfigError, match="seed=3; this run asks seed=4"):
        check_resume(tmp_path, other, other.decoding(), identity)


def test_the_yaml_example_in_the_docs_loads(tmp_path):
    docs = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
    if not docs.is_file():
        pytest.skip(f"the repository's docs are not here ({docs})")
    example = docs.read_text(encoding="utf-8").split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "eval.yaml").write_text(example)
    cfg = load_config(EvalConfig, tmp_path / "eval.yaml")
    assert (cfg.data.benchmarks, cfg.decoding().n, cfg.backend.kind) == (("aime24", "math500"), 8, "vllm")
