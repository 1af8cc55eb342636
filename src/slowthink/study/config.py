"""The grid file of ``slowthink study``: a base config, factors with arms, seeds, claims.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

A factor is one question of the paper's Table 1 ("on-policy or off-policy?"); each arm is
a list of dotted overrides of the base RL config (the same syntax as ``slowthink rl``);
each claim states the paper's finding as a direction on a metric between two arms, e.g.
``{metric: heldout/accuracy, direction: higher, arm: on_policy, than: off_policy}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from slowthink.config import ConfigError, StrictConfig, build_config, read_yaml

# higher / lower: the arm's value is above / below the other's; not_higher / not_lower: it
# is not significantly above / below (e.g. "length reward: accuracy not up", section 4.2.2).
Direction = Literal["higher", "lower", "not_higher", "not_lower"]


class ClaimConfig(StrictConfig):
    """The paper's finding as ``metric(arm) <direction> metric(than)``, judged per seed."""

    metric: str  # a key of metrics.jsonl, e.g. heldout/accuracy, response_length
    # How metric(arm) compares with metric(than): higher, lower, not_higher or not_lower.
    direction: Direction
    # The arm the claim is about.
    arm: str
    # The arm it is compared with.
    than: str
    # The run's value: the mean of the metric's last ``window`` logged values (1 = final value;
    # more smooths noisy per-step train metrics such as response_length).
    window: int = Field(1, ge=1)
    # Where the paper says it (shown in the report), e.g. "Table 1, section 3.1.1".
    source: str = ""


class FactorConfig(StrictConfig):
    """One factor of the grid: its arms (name -> dotted overrides) and the claims about them."""

    # What the factor varies, for the report.
    description: str = ""
    # Arm name -> dotted overrides of the base RL config.
    arms: dict[str, list[str]]
    claims: list[ClaimConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> FactorConfig:
        if len(self.arms) < 2:
            raise ValueError("a factor needs at least two arms to compare")
        for claim in self.claims:
            for arm in (claim.arm, claim.than):
                if arm not in self.arms:
                    raise ValueError(f"claim on {claim.metric} names arm '{arm}'; this factor's arms: {', '.join(self.arms)}")
        return self


class ColdStartConfig(StrictConfig):
    """An SFT cold start run once per seed and shared by all that seed's arms (section 4.1)."""

    config: str  # an SFT YAML (relative to the grid file), e.g. ../tiny_sft.yaml
    # Dotted overrides of the SFT config.
    overrides: list[str] = Field(default_factory=list)
    # Build the tiny model with the study seed as the SFT starting point (as ``slowthink demo``
    # does), instead of the SFT config's model.path.
    tiny_base: bool = True


class VerdictConfig(StrictConfig):
    """The rule that turns per-seed differences into held / reversed / inconclusive."""

    # A difference counts when |mean over seeds| > spread_multiple x (std over seeds) ...
    spread_multiple: float = 2.0
    # ... and |mean| > min_effect (in the metric's units), so a zero-spread tie is no finding.
    min_effect: float = 0.0


class StudyConfig(StrictConfig):
    base: str  # the base RL YAML, relative to the grid file
    output_dir: str = "runs/study"  # every run directory of the study goes below it
    # Where the report goes (default: <output_dir>/report).
    report_dir: str | None = None
    # Title of the report.
    title: str = "slowthink study"
    # Seeds every arm runs with; claims are judged per seed.
    seeds: list[int] = Field(default_factory=lambda: [0])
    # Runs at a time; torch threads are divided among them (each gets cores // parallel).
    parallel: int = Field(1, ge=1)
    # Overrides applied to every arm (before the arm's own), e.g. a shorter train.steps.
    overrides: list[str] = Field(default_factory=list)
    cold_start: ColdStartConfig | None = None
    factors: dict[str, FactorConfig]
    verdict: VerdictConfig = VerdictConfig()

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if not self.factors:
            raise ValueError("factors: the grid needs at least one factor")
        return self


def load_study(path: str | Path, overrides: list[str] | None = None) -> tuple[StudyConfig, Path]:
    """Read and validate a grid file; returns the config and the folder its paths are relative to."""
    from slowthink.config import apply_overrides

    path = Path(path)
    config = build_config(StudyConfig, apply_overrides(read_yaml(path), overrides or []), source=str(path))
    root = path.resolve().parent
    for name in [config.base] + ([config.cold_start.config] if config.cold_start else []):
        if not (root / name).is_file():
            raise ConfigError(f"{path}: config file not found: {name} (paths are relative to the grid file)")
    return config, root
