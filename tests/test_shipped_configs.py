"""Every shipped YAML in configs/ loads and validates with its recipe's config class."""

from __future__ import annotations

from pathlib import Path

import pytest

from slowthink.config import load_config
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import SFTConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    kind = SFTConfig if "sft" in path.stem else RLConfig
    config = load_config(kind, path)
    assert config.run.output_dir


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_preset_says_where_its_data_comes_from(path):
    text = path.read_text()
    if "train_file:" in text:  # data not shipped: the comments name each file and its origin
        for line in text.splitlines():
            if line.strip().startswith(("train_file:", "eval_file:")):
                name = line.split(":", 1)[1].split("#")[0].strip()
                assert f"#   {name}" in text, f"{path.name}: no comment says where {name} comes from"


PAPER_PRESETS = [p for p in CONFIGS if p.name.startswith("paper_")]


@pytest.mark.parametrize("path", PAPER_PRESETS, ids=lambda p: p.name)
def test_paper_presets_run_as_the_paper_did(path):
    """The paper's runs did not filter groups: dropping the all-equal ones shrinks the
    token-mean denominator to the informative rows (4x the per-token step with 1 informative
    group of 4) and takes the dropped rows out of the KL pull. The paper's outcome reward is
    1 / 0 (section 2), not the +1 / -1 / -2 of `still3`."""
    config = load_config(RLConfig, path)
    assert config.algorithm.drop_uniform_groups is False
    assert "still3" not in config.reward.weights
    # Whatever still differs from the paper is said where the preset is read.
    text = path.read_text()
    assert "# Differs from the paper, and why:" in text and "# | setting |" in text


def test_group_filtering_is_off_by_default_and_on_only_where_the_demo_chose_it():
    assert RLConfig().algorithm.drop_uniform_groups is False
    demo = load_config(RLConfig, next(p for p in CONFIGS if p.name == "tiny_rl.yaml"))
    assert demo.algorithm.drop_uniform_groups is True  # the demo's gain was measured with it


def test_docs_list_the_presets_deviations():
    text = (Path(__file__).resolve().parents[1] / "docs" / "rl.md").read_text()
    for path in PAPER_PRESETS:
        assert f"`{path.name}`" in text.split("## Paper presets: where they differ from the paper")[1]


STUDY_GRIDS = sorted((Path(__file__).resolve().parents[1] / "configs" / "study").glob("*.yaml"))


def test_both_study_grids_are_shipped():
    assert {p.name for p in STUDY_GRIDS} >= {"table1_tiny.yaml", "length_strategies_tiny.yaml"}


@pytest.mark.parametrize("path", STUDY_GRIDS, ids=lambda p: p.name)
def test_shipped_study_grid_loads_and_plans(path):
    from slowthink.study.config import load_study
    from slowthink.study.plan import build_plan

    study, root = load_study(path)
    plan = build_plan(study, root)  # every arm resolves to a valid RL config
    assert len(study.seeds) >= 5 and all(f.claims for f in study.factors.values())
    assert plan.runs and len(plan.cold_starts) == len(study.seeds)
    # Every claim has its thresholds: a min_effect, and a margin where it says "not".
    for factor in study.factors.values():
        for claim in factor.claims:
            rule = study.verdict.rule(claim)
            assert rule.min_effect > 0 and (rule.margin or not claim.direction.startswith("not_"))
