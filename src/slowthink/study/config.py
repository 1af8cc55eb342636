"""The grid file of ``slowthink study``: a base config, factors with arms, seeds, claims.

A factor is one question of the paper's Table 1 ("on-policy or off-policy?"); each arm is
a list of dotted overrides of the base RL config (the same syntax as ``slowthink rl``);
each claim states the paper's finding as a direction on a metric between two arms, e.g.
``{metric: heldout/accuracy, direction: higher, arm: on_policy, than: off_policy}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from slowthink.config import ConfigError, StrictConfig
from slowthink.study.verdict import Rule

# higher / lower: the arm's value is above / below the other's; not_higher / not_lower: it
# is not significantly above / below (e.g. "length reward: accuracy not up", section 4.2.2).
Direction = Literal["higher", "lower", "not_higher", "not_lower"]


class ClaimConfig(StrictConfig):
    """The paper's finding as ``metric(arm) <direction> metric(than)``, judged per seed."""

    metric: str
    """a key of metrics.jsonl, e.g. heldout/accuracy, response_length"""
    direction: Direction
    """How metric(arm) compares with metric(than): higher, lower, not_higher or not_lower."""
    arm: str
    """The arm the claim is about."""
    than: str
    """The arm it is compared with."""
    window: int | None = Field(None, ge=1)
    """The run's value: the mean of the metric's last ``window`` logged values, a plateau rather
    than one noisy final evaluation (default: verdict.window)."""
    min_effect: float | None = Field(None, gt=0)
    """The smallest difference that counts as a finding, in the metric's units (default:
    verdict.min_effect[metric]); > 0, so a zero seed spread does not make any difference count."""
    margin: float | None = Field(None, gt=0)
    """not_higher / not_lower: the difference that would count as higher / lower; the claim is
    held only when the interval's bound clears it (default: verdict.margin[metric])."""
    effect: float | None = Field(None, gt=0)
    """The effect the power analysis sizes the seeds for (default: the margin, else min_effect),
    e.g. the effect the paper reports."""
    source: str = ""
    """Where the paper says it (shown in the report), e.g. "Table 1, section 3.1.1"."""


class FactorConfig(StrictConfig):
    """One factor of the grid: its arms (name -> dotted overrides) and the claims about them."""

    description: str = ""
    """What the factor varies, for the report."""
    arms: dict[str, list[str]]
    """Arm name -> dotted overrides of the base RL config."""
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

    config: str
    """an SFT YAML (relative to the grid file), e.g. ../tiny_sft.yaml"""
    overrides: list[str] = Field(default_factory=list)
    """Dotted overrides of the SFT config."""
    tiny_base: bool = True
    """Build the tiny model with the study seed as the SFT starting point (as ``slowthink demo``
    does), instead of the SFT config's model.path."""


# Smallest differences that count, per metric (claims may set their own): 1 accuracy point
# is about the binomial error of 1,000 held-out problems at 70% (1.4 points), half of it over
# a plateau; a response-length token; 0.01 nats of entropy.
DEFAULT_MIN_EFFECTS = {
    "heldout/accuracy": 0.01,
    "accuracy": 0.01,
    "reward": 0.02,
    "response_length": 1.0,
    "heldout/response_length": 1.0,
    "completion_ratio": 0.01,
    "entropy": 0.01,
    "kl": 1e-4,
    "keywords/reflection": 0.01,
    "keywords/reflection_ratio": 0.01,
    "keywords/verification": 0.01,
    "keywords/verification_ratio": 0.01,
}


class VerdictConfig(StrictConfig):
    """The rule that turns per-seed differences into held / reversed / inconclusive (study/verdict.py)."""

    level: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence level of each claim's interval (t-based, over the paired per-seed differences)."""
    power: float = Field(0.8, gt=0.0, lt=1.0)
    """Power at which the minimum detectable effect and the seeds needed are stated."""
    adjust: Literal["holm", "none"] = "holm"
    """holm: the grid's claims are adjusted together (family-wise error <= 1 - level); none: each alone."""
    window: int = Field(3, ge=1)
    """Default plateau: a run's value is the mean of the metric's last ``window`` logged values."""
    min_effect: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIN_EFFECTS))
    """Metric -> smallest difference that counts (claims without their own min_effect)."""
    margin: dict[str, float] = Field(default_factory=dict)
    """Metric -> margin of not_higher / not_lower claims without their own."""

    @field_validator("min_effect", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        # A grid's map adds to (or changes) the defaults rather than dropping them.
        return {**DEFAULT_MIN_EFFECTS, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check(self) -> VerdictConfig:
        bad = [f"{key}={value}" for key, value in {**self.min_effect, **self.margin}.items() if not value > 0]
        if bad:
            raise ValueError(f"verdict.min_effect and verdict.margin values must be > 0, got {', '.join(bad)}")
        return self

    def rule(self, claim: ClaimConfig) -> Rule:
        """The claim's rule: its own thresholds, else this grid's per-metric defaults."""
        return Rule(
            claim.direction,
            claim.min_effect or self.min_effect.get(claim.metric, 0.0),
            claim.margin or self.margin.get(claim.metric),
            self.level,
            self.power,
            claim.effect,
        )

    def window_of(self, claim: ClaimConfig) -> int:
        return claim.window or self.window


class CostConfig(StrictConfig):
    """What ``--dry-run`` estimates the wall time from until the study has finished runs of its
    own (then their measured times win): seconds on the run's share of the cores."""

    rl_step_s: float = Field(3.0, gt=0)
    """One RL step (roll out, reward, update) of the base config."""
    eval_s: float = Field(15.0, ge=0)
    """One held-out evaluation (train.eval_max_problems problems)."""
    sft_run_s: float = Field(165.0, ge=0)
    """One whole SFT cold start."""
    arm_step_s: dict[str, float] = Field(default_factory=dict)
    """Arm name -> seconds per RL step where an arm costs more or less than the base."""


class StudyConfig(StrictConfig):
    base: str
    """the base RL YAML, relative to the grid file"""
    output_dir: str = "runs/study"
    """every run directory of the study goes below it"""
    report_dir: str | None = None
    """Where the report goes (default: <output_dir>/report)."""
    title: str = "slowthink study"
    """Title of the report."""
    seeds: list[int] = Field(default_factory=lambda: [0])
    """Seeds every arm runs with; claims are judged per seed."""
    parallel: int = Field(1, ge=1)
    """Runs at a time; torch threads are divided among them (each gets cores // parallel)."""
    overrides: list[str] = Field(default_factory=list)
    """Overrides applied to every arm (before the arm's own), e.g. a shorter train.steps."""
    cold_start: ColdStartConfig | None = None
    factors: dict[str, FactorConfig]
    verdict: VerdictConfig = VerdictConfig()
    cost: CostConfig = CostConfig()
    """Per-step costs the dry-run's wall-time estimate starts from (measured where the grid says)."""

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if not self.factors:
            raise ValueError("factors: the grid needs at least one factor")
        for name, factor in self.factors.items():
            for claim in factor.claims:
                where = f"factor '{name}', claim on {claim.metric} ({claim.arm} {claim.direction} {claim.than})"
                if not (claim.min_effect or self.verdict.min_effect.get(claim.metric)):
                    raise ValueError(f"{where}: no min_effect: set the claim's min_effect or verdict.min_effect['{claim.metric}']")
                if claim.direction.startswith("not_") and not (claim.margin or self.verdict.margin.get(claim.metric)):
                    raise ValueError(f"{where}: a {claim.direction} claim needs a margin: set the claim's margin or verdict.margin['{claim.metric}']")
        return self


def load_study(path: str | Path, overrides: list[str] | None = None) -> tuple[StudyConfig, Path]:
    """Read and validate a grid file; returns the config and the folder its paths are relative to."""
    from slowthink.config import load_config, resolve_config_path

    # ``configs/study/NAME.yaml`` names the shipped grid when no such file is here (a pip
    # install); its relative paths are then read against the package's copy.
    path = resolve_config_path(path)
    config = load_config(StudyConfig, path, overrides or [])
    root = path.resolve().parent
    for name in [config.base] + ([config.cold_start.config] if config.cold_start else []):
        if not (root / name).is_file():
            raise ConfigError(f"{path}: config file not found: {name} (paths are relative to the grid file)")
    return config, root
