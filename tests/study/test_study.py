"""slowthink study: the grid file, the plan (shared baselines), the report from run
directories, and (slow) a real tiny study end to end that resumes without redoing runs."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import ConfigError, load_config
from slowthink.study.config import StudyConfig, load_study
from slowthink.study.plan import build_plan
from slowthink.study.report import write_study_report
from slowthink.study.runner import DONE
from slowthink.training.checkpoint import latest_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "slowthink" / "configs"


def write_grid(tmp_path: Path, **changes) -> Path:
    grid = {
        "base": str(CONFIGS / "tiny_rl.yaml"),
        "output_dir": str(tmp_path / "study"),
        "seeds": [0, 1, 2],
        "factors": {
            "kl": {
                "arms": {"off": [], "fixed": ["kl.mode=fixed"]},
                "claims": [{"metric": "heldout/accuracy", "direction": "higher", "arm": "fixed", "than": "off"}],
            },
            "temperature": {
                "arms": {"t1": [], "t06": ["rollout.temperature=0.6"]},
                "claims": [{"metric": "response_length", "direction": "lower", "arm": "t06", "than": "t1", "window": 2}],
            },
        },
        **changes,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_shipped_table1_grid_loads_and_plans_one_baseline_per_seed():
    study, root = load_study(CONFIGS / "study" / "table1_tiny.yaml")
    plan = build_plan(study, root)
    assert len(plan.cold_starts) == 5 and len(plan.runs) == 55
    # Every factor's first arm is the base config: one shared run per seed.
    baselines = {plan.arms[(factor, next(iter(f.arms)), 0)] for factor, f in study.factors.items()}
    assert len(baselines) == 1 and next(iter(baselines)).startswith("seed0/base-")
    assert {"prompts_per_step", "on_policy", "rollouts_n", "temperature", "kl", "prompt", "length_reward", "entropy_bonus"} <= set(study.factors)
    assert all(f.claims for f in study.factors.values())


def test_a_bad_override_of_a_grid_is_blamed_on_the_command_line(tmp_path):
    # The grid is read by the one loader: a typo on the command line is looked for there, not in the file.
    with pytest.raises(ConfigError, match=r"on the command line:\n  override seedz=\[1\]: unknown key 'seedz' \(did you mean 'seeds'\?\)"):
        load_study(write_grid(tmp_path), ["seedz=[1]"])


def test_bad_grids_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'factorz'"):
        load_study(write_grid(tmp_path, factorz={}))
    with pytest.raises(ConfigError, match="names arm 'nope'"):
        load_config(
            StudyConfig, None, ["base=x", "factors={f: {arms: {a: [], b: []}, claims: [{metric: m, direction: higher, arm: nope, than: a}]}}"]
        )
    with pytest.raises(ConfigError, match="at least two arms"):
        load_config(StudyConfig, None, ["base=x", "factors={f: {arms: {a: []}}}"])
    with pytest.raises(ConfigError, match="(?s)arm 'fixed'.*kl.mode"):
        build_plan(*load_study(write_grid(tmp_path, factors={"kl": {"arms": {"off": [], "fixed": ["kl.mode=sometimes"]}}})))


def fake_run(job, heldout: float, length: float, steps: int = 22) -> None:
    """A finished run as slowthink rl writes it (the metrics the report reads) and the study marks it."""
    run_dir = job.run_dir
    run_dir.mkdir(parents=True)
    rows = [
        {"step": s, "accuracy": 0.5, "response_length": length + (5 * s if length > 50 else 0), "entropy": 1.0, "kl": 0.0}
        for s in range(1, steps + 1)
    ]
    rows[-1]["heldout/accuracy"] = heldout
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / DONE).write_text(json.dumps({"config_hash": job.config_hash, "wall_s": 60.0}))


@pytest.mark.slow  # ~4 s: matplotlib figures
def test_report_from_run_directories_has_verdicts_figures_and_html(tmp_path):
    study, root = load_study(write_grid(tmp_path))
    plan = build_plan(study, root)
    assert len(plan.runs) == 3 * 3  # base, fixed, t06 per seed
    for seed in study.seeds:
        fake_run(plan.runs[plan.arms[("kl", "off", seed)]], heldout=0.5 + 0.01 * seed, length=60)
        fake_run(plan.runs[plan.arms[("kl", "fixed", seed)]], heldout=0.6 + 0.01 * seed, length=40)
        fake_run(plan.runs[plan.arms[("temperature", "t06", seed)]], heldout=0.5, length=20 + 10 * seed)
    md, html = write_study_report(study, plan, None, tmp_path / "report", command="slowthink study grid.yaml")
    text = md.read_text()
    # KL: fixed - off = 0.1 on every seed -> held. Temperature: t06 - t1 = 20-167.5, 30-167.5, 40-167.5 (lower) -> held.
    assert re.search(r"\| kl: heldout/accuracy \(mean of the last 3 logged values\): fixed higher than off \| 0.1 \[0.1, 0.1\] \|.*\| held \|", text)
    assert re.search(r"\| temperature: response_length \(mean of the last 2 logged values\): t06 lower than t1 \|.*\| held \|", text)
    assert "p raw / Holm-adjusted" in text and "slowthink study grid.yaml" in text
    # The baseline run lengthens at flat accuracy: the detector's episode is named.
    assert "Length hacking" in text and "off (seed 0: steps 20-22)" in text
    for figure in ("kl.png", "temperature.png"):
        assert (tmp_path / "report" / "figures" / figure).read_bytes().startswith(b"\x89PNG")
        assert f"figures/{figure}" in text
    page = html.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 2 and base64.b64decode(embedded[0]).startswith(b"\x89PNG")
    assert "<b>Verdict: held</b>" in page and 'src="figures' not in page


def test_missing_runs_make_inconclusive_verdicts(tmp_path):
    study, root = load_study(write_grid(tmp_path, seeds=[0]))
    plan = build_plan(study, root)
    text = write_study_report(study, plan, None, tmp_path / "report")[0].read_text()
    assert "Runs without metrics yet** (3)" in text
    assert text.count("| inconclusive |") == 2


# A tiny RL run: a few prompts, 8 tokens, no held-out evaluation but the last.
TINY_RUN = [
    "train.eval_every=0",
    "train.eval_max_problems=4",
    "train.save_every=1",
    "data.tiny_train_size=32",
    "data.tiny_eval_size=4",
    "rollout.prompts_per_step=2",
    "rollout.rollouts_per_prompt=2",
    "rollout.max_length_schedule=[[0,8]]",
]


@pytest.mark.slow
def test_tiny_study_runs_resumes_and_reports(tmp_path):
    """Two seeds x (base, one arm) from a shared cold start; a rerun skips every finished run."""
    tiny = ["train.steps=2", *TINY_RUN]
    grid = write_grid(
        tmp_path,
        seeds=[0, 1],
        overrides=tiny,
        report_dir=str(tmp_path / "report"),
        cold_start={
            "config": str(CONFIGS / "tiny_sft.yaml"),
            "overrides": ["train.steps=2", "train.batch_size=4", "train.micro_batch_size=4", "data.tiny_size=16", "train.save_every=2"],
        },
        factors={
            "kl": {
                "arms": {"off": [], "fixed": ["kl.mode=fixed"]},
                "claims": [{"metric": "accuracy", "direction": "higher", "arm": "fixed", "than": "off"}],
            }
        },
    )
    result = CliRunner().invoke(app, ["study", str(grid)])
    assert result.exit_code == 0, result.output
    study, root = load_study(grid)
    plan = build_plan(study, root)
    jobs = [*plan.cold_starts.values(), *plan.runs.values()]
    assert len(jobs) == 6 and all((job.run_dir / DONE).is_file() for job in jobs)
    # The RL runs started from their seed's cold start.
    config = yaml.safe_load((plan.runs[plan.arms[("kl", "off", 1)]].run_dir / "config.yaml").read_text())
    assert config["model"]["path"].startswith(str(tmp_path / "study" / "seed1" / "sft" / "checkpoints"))
    assert "kl: accuracy (mean of the last 3 logged values): fixed higher than off |" in (tmp_path / "report" / "report.md").read_text()
    # A rerun redoes nothing but a run killed after step 1 (its step-2 checkpoint, metrics
    # row and done marker gone): that one continues from step 1.
    killed = plan.runs[plan.arms[("kl", "fixed", 0)]].run_dir
    (killed / DONE).unlink()
    shutil.rmtree(killed / "checkpoints" / "step_000002")
    (killed / "checkpoints" / "latest").write_text("step_000001")
    metrics = (killed / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text(metrics[0] + "\n")
    before = {job.name: (job.run_dir / "metrics.jsonl").read_text() for job in plan.runs.values() if job.run_dir != killed}
    result = CliRunner().invoke(app, ["study", str(grid)])
    assert result.exit_code == 0, result.output
    assert "sft run(s) already done" in result.output and "3 rl run(s) already done" in result.output
    assert "(1/1) seed0/fixed-" in result.output and "resuming" in result.output
    assert (killed / DONE).is_file() and latest_checkpoint(killed).name == "step_000002"
    assert [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert {job.name: (job.run_dir / "metrics.jsonl").read_text() for job in plan.runs.values() if job.run_dir != killed} == before


@pytest.mark.slow
def test_parallel_study_runs_subprocesses_with_divided_threads(tmp_path):
    tiny = ["train.steps=1", *TINY_RUN, "model.path=tiny"]
    # Arm names with dots (as the shipped grid's t0.6 / t1.2): each run keeps its own log.
    arms = {"t0.6": ["rollout.temperature=0.6"], "t0.8": ["rollout.temperature=0.8"]}
    grid = write_grid(tmp_path, seeds=[0], parallel=2, overrides=tiny, factors={"temperature": {"arms": arms}})
    result = CliRunner().invoke(app, ["study", str(grid)])
    assert result.exit_code == 0, result.output
    plan = build_plan(*load_study(grid))
    assert len(plan.runs) == 2
    for job in plan.runs.values():
        assert (job.run_dir / DONE).is_file()
        config = yaml.safe_load((job.run_dir / "config.yaml").read_text())
        assert config["run"]["torch_threads"] >= 1 and config["run"]["progress"] is False
        log = job.run_dir.parent / f"{job.run_dir.name}.log"
        assert log.is_file(), sorted(p.name for p in job.run_dir.parent.iterdir())
        text = log.read_text()
        assert "run written to" in text and text.count("run written to") == 1 and job.run_dir.name in text


@pytest.mark.slow  # ~5 s: runs and reports a grid
def test_cli_dry_run_and_report_only(tmp_path):
    grid = write_grid(tmp_path, seeds=[0, 1])
    study, root = load_study(grid)
    plan = build_plan(study, root)
    for seed in study.seeds:
        fake_run(plan.runs[plan.arms[("kl", "off", seed)]], heldout=0.5, length=40)
    result = CliRunner().invoke(app, ["study", str(grid), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "6 runs, 2 done" in result.output and "to do" in result.output
    result = CliRunner().invoke(app, ["study", str(grid), "--report-only", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").is_file() and "| inconclusive |" in (tmp_path / "r" / "report.md").read_text()
    result = CliRunner().invoke(app, ["study", str(grid), "seeds=[]", "--dry-run"])
    assert result.exit_code == 2 and "seeds must be a non-empty list" in result.output


def test_claims_need_a_margin_and_a_min_effect(tmp_path):
    no_margin = {
        "kl": {
            "arms": {"off": [], "fixed": ["kl.mode=fixed"]},
            "claims": [{"metric": "heldout/accuracy", "direction": "not_higher", "arm": "fixed", "than": "off"}],
        }
    }
    with pytest.raises(ConfigError, match=r"factor 'kl', claim on heldout/accuracy \(fixed not_higher off\): a not_higher claim needs a margin"):
        load_study(write_grid(tmp_path, factors=no_margin))
    # The grid's per-metric margin serves; a metric without a default min_effect must name one.
    load_study(write_grid(tmp_path, factors=no_margin, verdict={"margin": {"heldout/accuracy": 0.03}}))
    custom = {
        "kl": {
            "arms": {"off": [], "fixed": ["kl.mode=fixed"]},
            "claims": [{"metric": "tools/calls", "direction": "higher", "arm": "fixed", "than": "off"}],
        }
    }
    with pytest.raises(ConfigError, match=r"no min_effect: set the claim's min_effect or verdict.min_effect\['tools/calls'\]"):
        load_study(write_grid(tmp_path, factors=custom))
    study, _ = load_study(write_grid(tmp_path, factors=custom, verdict={"min_effect": {"tools/calls": 0.5}}))
    # A grid's map adds to the defaults.
    assert study.verdict.min_effect["tools/calls"] == 0.5 and study.verdict.min_effect["heldout/accuracy"] > 0
    # The old rule's key is gone: an error that names it, not a silently different rule.
    with pytest.raises(ConfigError, match="spread_multiple"):
        load_study(write_grid(tmp_path, verdict={"spread_multiple": 2.0}))


def test_shipped_grid_is_found_from_any_directory_with_paths_read_against_it(tmp_path, monkeypatch):
    """After a pip install there is no configs/ here: the shipped grid is found in the
    package, and its ../tiny_rl.yaml is read against the package's copy, not the cwd."""
    from slowthink.config import shipped_config_dir

    monkeypatch.chdir(tmp_path)
    study, root = load_study("configs/study/length_strategies_tiny.yaml")
    assert root == (shipped_config_dir() / "study").resolve()
    result = CliRunner().invoke(app, ["study", "configs/study/length_strategies_tiny.yaml", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "estimated wall time of the rest" in result.output and "35 runs, 0 done" in result.output


def test_dry_run_estimates_from_measured_runs_then_the_grid_s_costs(tmp_path):
    from slowthink.study.estimate import estimate

    grid = write_grid(tmp_path, seeds=[0, 1], overrides=["train.steps=20", "train.eval_every=10"], parallel=2)
    study, root = load_study(grid)
    plan = build_plan(study, root)
    cost = study.cost
    # Nothing run: 20 steps and 3 evaluations (steps 0, 10, 20) from the cost section.
    before = estimate(study, plan)
    per_run = 20 * cost.rl_step_s + 3 * cost.eval_s
    assert all(e.seconds == pytest.approx(per_run) and not e.measured for e in before.jobs)
    assert before.wall_s == pytest.approx(len(plan.runs) * per_run / 2)
    # Seed 0's base run finished in 60 s: seed 1's base run is estimated from it. Seed 0's
    # "fixed" run stopped after 5 of 20 steps: three quarters of it are left.
    base0, base1 = (plan.runs[plan.arms[("kl", "off", s)]] for s in (0, 1))
    fake_run(base0, heldout=0.5, length=40, steps=20)
    (base0.run_dir / DONE).write_text(json.dumps({"config_hash": base0.config_hash, "wall_s": 60.0}))
    fixed0 = plan.runs[plan.arms[("kl", "fixed", 0)]]
    fixed0.run_dir.mkdir(parents=True)
    (fixed0.run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)))
    after = {e.job.name: e for e in estimate(study, plan).jobs}
    assert after[base0.name].seconds == 0
    assert after[base1.name].seconds == pytest.approx(60.0) and after[base1.name].measured
    assert after[fixed0.name].seconds == pytest.approx(0.75 * per_run) and not after[fixed0.name].measured
