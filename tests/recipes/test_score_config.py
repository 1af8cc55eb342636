"""``slowthink score``'s nested config: every flag sets the value it always set at its nested
key, the old flat keys name their new place, the defaults did not move, and the checker
section is eval's."""

from __future__ import annotations

from pathlib import Path

import cli_flags
import pytest
from cli_flags import at

from slowthink.config import ConfigError, load_config
from slowthink.recipes.eval_config import EvalCheckerConfig
from slowthink.recipes.score import ScoreConfig
from slowthink.recipes.score_config import MOVED_KEYS, ScoreCheckerConfig

REQUIRED = ["x.jsonl", "--out", "o.jsonl"]


def printed_config(*args: str) -> dict:
    return cli_flags.printed_config("score", *args)


# Every flag `slowthink score` had before its keys were nested: (arguments, the key it sets, the value).
FLAG_CASES = [
    (["--out", "elsewhere.jsonl"], "out", "elsewhere.jsonl"),
    (["--format", "lm-eval"], "format", "lm-eval"),
    (["--answer-field", "gold"], "fields.answer", "gold"),
    (["--response-field", "model_response.text"], "fields.response", "model_response.text"),
    (["--responses-field", "resps[0]"], "fields.responses", "resps[0]"),
    (["--id-field", "doc_id"], "fields.id", "doc_id"),
    (["--golds", "problems.jsonl"], "fields.golds", "problems.jsonl"),
    (["--pass-k", "2", "--pass-k", "3"], "pass_k", [2, 3]),
    (["--checker", "exact"], "checker.kind", "exact"),
    (["--fallback"], "checker.answer_fallback", True),
    (["--workers", "3"], "checker.workers", 3),
    (["--timeout", "1.5"], "checker.timeout", 1.5),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAG_CASES, ids=[" ".join(case[0]) for case in FLAG_CASES])
def test_every_flag_sets_the_same_value_at_its_nested_key(args, key, value):
    given = args if "--out" in args else ["--out", "o.jsonl", *args]
    printed = printed_config("x.jsonl", *given)
    assert at(printed, key) == value
    assert printed["file"] == "x.jsonl"


def test_the_flag_cases_cover_every_flag_of_the_command():
    assert cli_flags.declared_options("score") - {"--config"} == cli_flags.tested_options(FLAG_CASES)


def test_the_golds_files_columns_are_keys_without_flags():
    printed = printed_config(*REQUIRED, "fields.golds_id=custom_id", "fields.golds_answer=gold")
    assert (at(printed, "fields.golds_id"), at(printed, "fields.golds_answer")) == ("custom_id", "gold")


def test_defaults_are_unchanged():
    """The flat config's defaults, key for key, at the new keys."""
    cfg = load_config(ScoreConfig, None, [], {"file": "x.jsonl", "out": "o.jsonl"})
    flat_defaults = {
        "format": None,
        "answer_field": None,
        "response_field": None,
        "responses_field": None,
        "id_field": None,
        "golds": None,
        "golds_id_field": "id",
        "golds_answer_field": "answer",
        "pass_k": (),
        "checker": "math",
        "fallback": False,
        "workers": 2,
        "timeout": 5.0,
    }
    for old, default in flat_defaults.items():
        new = MOVED_KEYS.get(old, old)
        node = cfg
        for part in new.split("."):
            node = getattr(node, part)
        assert node == default, (old, new)


def test_flat_keys_name_their_new_place(tmp_path):
    with pytest.raises(ConfigError, match=r"'fallback' is now 'checker\.answer_fallback'.*'timeout' is now 'checker\.timeout'"):
        load_config(ScoreConfig, None, ["fallback=true", "timeout=3"], {"file": "x.jsonl", "out": "o.jsonl"})
    # The section's own name with a plain value is the old flat key: checker=exact.
    with pytest.raises(ConfigError, match=r"'checker' is now 'checker\.kind'"):
        load_config(ScoreConfig, None, ["checker=exact"], {"file": "x.jsonl", "out": "o.jsonl"})
    old = tmp_path / "score.yaml"
    old.write_text("file: x.jsonl\nout: o.jsonl\nanswer_field: gold\ngolds: g.jsonl\ngolds_id_field: custom_id\nworkers: 4\n")
    with pytest.raises(ConfigError) as error:
        load_config(ScoreConfig, old)
    message = str(error.value)
    for before, after in (
        ("answer_field", "fields.answer"),
        ("golds", "fields.golds"),
        ("golds_id_field", "fields.golds_id"),
        ("workers", "checker.workers"),
    ):
        assert f"'{before}' is now '{after}'" in message
    assert "slowthink config score" in message
    # A misspelt old key gets its new key as the suggestion.
    with pytest.raises(ConfigError, match=r"unknown key 'fallbak' \(did you mean 'checker\.answer_fallback'\?\)"):
        load_config(ScoreConfig, None, ["fallbak=true"], {"file": "x.jsonl", "out": "o.jsonl"})
    # The flat config had 15 keys: four stayed at the top, the rest are listed; each new key exists.
    stayed = {"file", "out", "format", "pass_k"}
    assert len(MOVED_KEYS) + len(stayed) == 15 and stayed | {"fields", "checker"} == set(ScoreConfig.model_fields)
    for new in MOVED_KEYS.values():
        section, field = new.split(".")
        assert field in ScoreConfig.model_fields[section].annotation.model_fields


def test_the_checker_section_is_evals_with_a_time_limit():
    assert issubclass(ScoreCheckerConfig, EvalCheckerConfig)
    assert set(ScoreCheckerConfig.model_fields) - set(EvalCheckerConfig.model_fields) == {"timeout"}
    with pytest.raises(ConfigError, match=r"'checker\.timeout'"):
        load_config(ScoreConfig, None, ["checker.timeout=0"], {"file": "x.jsonl", "out": "o.jsonl"})


def test_a_nested_yaml_file_sets_the_paths_read(tmp_path):
    config = tmp_path / "score.yaml"
    config.write_text("file: x.jsonl\nout: o.jsonl\nfields:\n  answer: gold\n  id: doc_id\n")
    fields = load_config(ScoreConfig, config).row_fields()
    # Given paths win; the rest are the jsonl format's.
    assert (fields.answer, fields.problem_id, fields.response, fields.responses) == ("gold", "doc_id", "response", "responses")
    # With golds, the join is on the id path given.
    assert load_config(ScoreConfig, config).row_fields({"1": "2"}).join == "doc_id"


def test_the_yaml_example_in_the_docs_loads(tmp_path):
    docs = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
    if not docs.is_file():
        pytest.skip(f"the repository's docs are not here ({docs})")
    blocks = [block.split("```", 1)[0] for block in docs.read_text(encoding="utf-8").split("```yaml\n")[1:]]
    example = next(block for block in blocks if block.startswith("file: "))
    (tmp_path / "score.yaml").write_text(example)
    cfg = load_config(ScoreConfig, tmp_path / "score.yaml")
    assert (cfg.format, cfg.fields.golds, cfg.fields.golds_answer, cfg.checker.workers, cfg.checker.timeout) == (
        "openai-batch",
        "problems.jsonl",
        "gold",
        4,
        10.0,
    )
