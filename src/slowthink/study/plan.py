"""A grid file -> the list of run directories to produce (one per distinct arm config and seed).

Arms of different factors that resolve to the same RL config (every factor's baseline is
usually the base config itself) share one run: the grid of Table 1 then costs one baseline
per seed, not one per factor. A run directory is named after the first arm that needs it
plus a hash of its resolved config, so editing an arm in the grid file gives it a new
directory instead of silently reusing a finished run of the old config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from slowthink.config import ConfigError, load_config
from slowthink.study.config import StudyConfig

# Keys that say where a run writes or starts from, not what it does: left out of the hash.
LOCATION_KEYS = (("run", "output_dir"), ("model", "path"), ("model", "optimizer_state"))


@dataclass(frozen=True)
class Job:
    """One run directory of the study: an SFT cold start or an RL arm for one seed."""

    name: str  # "seed0/sft" or "seed0/on_policy-1a2b3c4d" (the directory below output_dir)
    kind: Literal["sft", "rl"]
    config_file: Path
    overrides: tuple[str, ...]  # everything but the model path of a cold-started RL run
    run_dir: Path
    seed: int
    config_hash: str
    cold_start: str | None = None  # name of the SFT job whose last checkpoint this RL run starts from


@dataclass(frozen=True)
class Plan:
    cold_starts: dict[int, Job]  # seed -> SFT job
    runs: dict[str, Job]  # job name -> RL job, in grid order
    arms: dict[tuple[str, str, int], str]  # (factor, arm, seed) -> RL job name


def config_hash(config_class, config_file: Path, overrides: list[str]) -> str:
    """First 8 hex digits of the SHA-1 of the resolved config, location keys left out."""
    tree = load_config(config_class, config_file, overrides).model_dump(mode="json")
    for section, key in LOCATION_KEYS:
        tree.get(section, {}).pop(key, None)
    return hashlib.sha1(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:8]


def build_plan(study: StudyConfig, root: Path) -> Plan:
    """Resolve every arm x seed (validating each config now, before any run starts)."""
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.recipes.sft import SFTConfig

    out = Path(study.output_dir)
    base = root / study.base
    cold_starts: dict[int, Job] = {}
    runs: dict[str, Job] = {}
    arms: dict[tuple[str, str, int], str] = {}
    for seed in study.seeds:
        cold = None
        if study.cold_start is not None:
            sft_file = root / study.cold_start.config
            sft_overrides = [*study.cold_start.overrides, f"run.seed={seed}", f"run.output_dir={out / f'seed{seed}' / 'sft'}"]
            cold = Job(
                f"seed{seed}/sft",
                "sft",
                sft_file,
                tuple(sft_overrides),
                out / f"seed{seed}" / "sft",
                seed,
                config_hash(SFTConfig, sft_file, sft_overrides),
            )
            cold_starts[seed] = cold
        # The arm that changes nothing (every factor's usual baseline) is the run "base".
        base_digest = config_hash(RLConfig, base, [*study.overrides, f"run.seed={seed}"])
        by_hash: dict[str, str] = {}
        for factor_name, factor in study.factors.items():
            for arm_name, arm_overrides in factor.arms.items():
                overrides = [*study.overrides, *arm_overrides, f"run.seed={seed}"]
                try:
                    digest = config_hash(RLConfig, base, overrides)
                except ConfigError as exc:
                    raise ConfigError(f"factor '{factor_name}', arm '{arm_name}': {exc}") from None
                if digest not in by_hash:
                    name = f"seed{seed}/{'base' if digest == base_digest else arm_name}-{digest}"
                    run_dir = out / name
                    runs[name] = Job(name, "rl", base, (*overrides, f"run.output_dir={run_dir}"), run_dir, seed, digest, cold.name if cold else None)
                    by_hash[digest] = name
                arms[(factor_name, arm_name, seed)] = by_hash[digest]
    return Plan(cold_starts, runs, arms)
