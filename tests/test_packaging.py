"""The built wheel: it carries the shipped configs (so ``slowthink demo`` runs outside a
checkout), its metadata builds without setuptools warnings, and ``--version`` answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """Build the wheel from a copy of the tree (setuptools writes build/ beside pyproject)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("slowthink-*.whl")
    return path, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_builds_without_license_deprecation(wheel):
    _, log = wheel
    assert "project.license" not in log and "License classifiers are deprecated" not in log, log
    assert "SetuptoolsDeprecationWarning" not in log, log


@pytest.mark.slow
def test_demo_configs_found_from_a_wheel_install_outside_the_checkout(wheel, tmp_path):
    path, _ = wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert "slowthink/configs/tiny_sft.yaml" in names and "slowthink/configs/tiny_rl.yaml" in names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import slowthink, sys\n"
        f"assert slowthink.__file__.startswith({str(site)!r}), slowthink.__file__\n"
        "from slowthink.config import load_config\n"
        "from slowthink.recipes.demo import CONFIG_DIR\n"
        "from slowthink.recipes.rl_config import RLConfig\n"
        "from slowthink.recipes.sft import SFTConfig\n"
        "print(load_config(SFTConfig, CONFIG_DIR / 'tiny_sft.yaml').train.steps)\n"
        "print(load_config(RLConfig, CONFIG_DIR / 'tiny_rl.yaml').train.steps)\n"
        # The README's `slowthink rl configs/tiny_rl.yaml` names a shipped preset, found from any directory.
        "print(load_config(RLConfig, 'configs/tiny_rl.yaml').train.steps)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    help_run = subprocess.run(
        [sys.executable, "-m", "slowthink.cli", "demo", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert help_run.returncode == 0 and "Usage" in help_run.stdout, help_run.stderr
