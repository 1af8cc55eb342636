"""Dependencies as installed: extras spelled as their packages provide them, transformers
within its tested bound and used through its current API (no FutureWarning in a run)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from slowthink.models.modeling import MemoryPlan, set_memory_plan
from slowthink.models.tiny import build_model, build_tokenizer
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.hf import HFGenerator

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = [*project["dependencies"], *(t for group in project["optional-dependencies"].values() for t in group)]
    return [Requirement(text) for text in texts]


def test_every_extra_asked_for_is_spelled_as_its_package_provides_it():
    # pip < 23.3 or so compares extras unnormalised: "antlr4_13_2" against math-verify 0.9.0's
    # "antlr4-13-2" printed "does not provide the extra" at every install.
    checked = 0
    for requirement in requirements():
        if not requirement.extras:
            continue
        try:
            provided = metadata.metadata(requirement.name).get_all("Provides-Extra") or []
        except metadata.PackageNotFoundError:
            continue  # an optional extra that is not installed here
        for extra in requirement.extras:
            assert extra in provided, f"{requirement}: {requirement.name} provides {provided}, not {extra!r}"
            checked += 1
    assert checked >= 1  # math-verify's antlr4 extra at least


def test_the_installed_transformers_is_inside_the_tested_bound():
    (bound,) = [r for r in requirements() if r.name == "transformers"]
    assert bound.specifier.contains(metadata.version("transformers")), bound
    assert any(spec.operator == "<" for spec in bound.specifier), "transformers needs an upper bound"


def test_generic_decoding_uses_the_current_cache_argument():
    # The generic loop (fast=False, and every model the fast path cannot take) passed
    # past_key_values=, which transformers deprecates (FutureWarning) and removes in 5.40.
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=0).eval()
    generator = HFGenerator(model, tokenizer, fast=False)
    prompt = tokenizer.encode("<|user|>1+2<|assistant|>", add_special_tokens=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        (completion,) = generator.generate([prompt], SamplingParams(max_new_tokens=6, temperature=0.0))
    assert len(completion.token_ids) == 6 or completion.finish_reason == "stop"


def test_setting_a_memory_plan_gives_no_future_warning():
    model = build_model(build_tokenizer(), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        set_memory_plan(model, MemoryPlan())  # every run's start: read is_gradient_checkpointing
        set_memory_plan(model, MemoryPlan(gradient_checkpointing=True))
        set_memory_plan(model, MemoryPlan())
    assert not getattr(model, "is_activation_checkpointing", False)


@pytest.mark.slow
def test_an_rl_run_starts_and_steps_without_a_future_warning(tmp_path):
    command = [sys.executable, "-W", "error::FutureWarning", "-m", "slowthink.cli", "rl", "configs/tiny_rl.yaml"]
    command += ["train.steps=1", f"run.output_dir={tmp_path / 'rl'}", "rollout.prompts_per_step=2", "data.tiny_eval_size=4"]
    command += ["train.eval_max_problems=2", "run.progress=false", "run.torch_threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
