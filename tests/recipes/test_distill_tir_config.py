"""``slowthink distill-tir``'s nested config: every flag sets the key it always set, the old
flat keys name their new place, and the backend section is eval's."""

from __future__ import annotations

import cli_flags
import pytest
from cli_flags import at

from slowthink.config import ConfigError, load_config
from slowthink.recipes.distill_tir import MOVED_KEYS, DistillTIRConfig

URL = "http://127.0.0.1:8000/v1"
REQUIRED = ["--data", "p.jsonl", "--out", "o.jsonl"]


def printed_config(*args: str, env: dict[str, str] | None = None) -> dict:
    return cli_flags.printed_config("distill-tir", *args, env=env)


OPENAI = ["--backend", "openai", "--base-url", URL]
# Every flag distill-tir had before its keys were nested: (arguments, the key it sets, the value).
FLAG_CASES = [
    (["--data", "mine.jsonl", "--out", "o.jsonl"], "data.file", "mine.jsonl"),
    (["--data", "p.jsonl", "--out", "rows.jsonl"], "out", "rows.jsonl"),
    ([*REQUIRED, "--model", "some/dir"], "model", "some/dir"),
    ([*REQUIRED, "--teacher", "other/dir"], "model", "other/dir"),
    ([*REQUIRED, *OPENAI], "backend.kind", "openai"),
    ([*REQUIRED, *OPENAI], "backend.base_url", URL),
    ([*REQUIRED, *OPENAI, "--api-key", "k"], "backend.api_key", "k"),
    ([*REQUIRED, *OPENAI, "--served-model-name", "NAME"], "backend.served_model_name", "NAME"),
    ([*REQUIRED, "--source", "inject"], "source", "inject"),
    ([*REQUIRED, "--max-tokens", "100"], "sampling.max_tokens", 100),
    ([*REQUIRED, "--checker", "exact"], "checker.kind", "exact"),
    ([*REQUIRED, "--limit", "3"], "data.limit", 3),
    ([*REQUIRED, "--seed", "7"], "seed", 7),
    ([*REQUIRED, "--no-progress"], "progress", False),
    ([*REQUIRED, "--progress"], "progress", True),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAG_CASES, ids=[" ".join(case[0][4:]) or case[1] for case in FLAG_CASES])
def test_every_flag_sets_the_same_value_at_its_nested_key(args, key, value):
    assert at(printed_config(*args), key) == value


def test_the_api_key_flag_still_reads_openai_api_key():
    assert printed_config(*REQUIRED, *OPENAI, env={"OPENAI_API_KEY": "from-env"})["backend"]["api_key"] == "from-env"


def test_the_flag_cases_cover_every_flag_of_the_command():
    assert cli_flags.declared_options("distill-tir") == cli_flags.tested_options(FLAG_CASES)


def test_flat_keys_name_their_new_place(tmp_path):
    old = tmp_path / "distill.yaml"
    old.write_text("data: p.jsonl\nout: o.jsonl\nbackend: openai\nbase_url: http://x/v1\ntool_preset: still3\nmax_tokens: 100\n")
    with pytest.raises(ConfigError) as error:
        load_config(DistillTIRConfig, old)
    message = str(error.value)
    for before, after in (("data", "data.file"), ("backend", "backend.kind"), ("base_url", "backend.base_url"), ("tool_preset", "tools.preset")):
        assert f"'{before}' is now '{after}'" in message
    assert "'max_tokens' is now 'sampling.max_tokens'" in message
    # Each new key exists.
    for new in MOVED_KEYS.values():
        section, field = new.split(".")
        assert field in DistillTIRConfig.model_fields[section].annotation.model_fields


def test_backend_mistakes_name_the_key():
    flags = {"data.file": "p.jsonl", "out": "o.jsonl"}
    with pytest.raises(ConfigError, match=r"'backend\.kind': Input should be 'hf' or 'openai'"):
        load_config(DistillTIRConfig, None, ["backend.kind=vllm"], flags)
    with pytest.raises(ConfigError, match="base_url and served_model_name are for --backend openai"):
        load_config(DistillTIRConfig, None, [f"backend.base_url={URL}"], flags)
    with pytest.raises(ConfigError, match=r"'backend\.max_retries'"):
        load_config(DistillTIRConfig, None, ["backend.max_retries=-1"], flags)
