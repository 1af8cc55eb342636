"""A user's mistake gets one message and exit status 2 in every command, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.cli.errors import exit_code_for


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert any(line.startswith("error:") for line in result.output.splitlines()), result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_rl_bad_key(tmp_path):
    assert_user_error(invoke("rl", f"run.output_dir={tmp_path}", "kl.bogus=1"), "kl.bogus")


def test_sft_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = invoke("sft", f"run.output_dir={tmp_path / 'run'}", "data.source=jsonl", f"data.train_file={missing}", "train.steps=1")
    assert_user_error(result, str(missing))


def test_eval_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    assert_user_error(invoke("eval", "--data", str(missing), "--out", str(tmp_path / "out"), "--checker", "exact"), str(missing))


def test_eval_bad_option(tmp_path):
    assert_user_error(invoke("eval", "--benchmark", "nope", "--out", str(tmp_path / "out")), "nope")


def test_distill_tir_missing_data_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = invoke("distill-tir", "--data", str(missing), "--out", str(tmp_path / "o.jsonl"), "--checker", "exact")
    assert_user_error(result, str(missing))


def test_score_missing_file(tmp_path):
    assert_user_error(invoke("score", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")), "missing.jsonl")


def test_serve_missing_model(tmp_path):
    missing = tmp_path / "no-model"
    assert_user_error(invoke("serve", "--model", str(missing)), str(missing))


def test_report_not_a_run(tmp_path):
    assert_user_error(invoke("report", str(tmp_path), "--out", str(tmp_path / "rep")), "metrics.jsonl")


def test_demo_bad_override(tmp_path):
    assert_user_error(invoke("demo", "--out", str(tmp_path), "--sft", "train.bogus=1"), "train.bogus")
    # A bad RL override is found before the SFT stage runs (minutes on a CPU).
    result = invoke("demo", "--out", str(tmp_path), "--rl", "kl.bogus=1")
    assert_user_error(result, "kl.bogus")
    assert "built the tiny model" not in result.output and "SFT cold start" not in result.output


def test_sandbox_bad_setting(tmp_path):
    cell = tmp_path / "cell.py"
    cell.write_text("print(1)\n")
    assert_user_error(invoke("sandbox", "run", str(cell), "--set", "bogus=1"), "bogus")


def test_sft_batch_that_does_not_split_over_ranks_is_a_config_error(tmp_path):
    # torchrun with 3 ranks and train.batch_size=4: a config the user must change, not a bare ValueError.
    from slowthink.config import ConfigError, load_config
    from slowthink.recipes.sft import SFTConfig, train_sft
    from slowthink.training.distributed import DistInfo
    from slowthink.training.run_dir import RunStart

    config = load_config(SFTConfig, None, [f"run.output_dir={tmp_path}", "train.batch_size=4", "train.steps=1", "run.torch_threads=1"])
    with pytest.raises(ConfigError, match="train.batch_size"):
        train_sft(config, RunStart(Path(tmp_path), None), DistInfo(rank=0, world_size=3))


def test_exit_codes_by_kind():
    from slowthink.config import ConfigError
    from slowthink.rollout.openai_backend import OpenAIBackendError

    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(OpenAIBackendError("server down")) == 1  # not the user's mistake
    assert exit_code_for(ValueError("a bug")) is None  # a bug keeps its traceback


def test_version():
    from slowthink import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"slowthink {__version__}"


@pytest.mark.parametrize(
    "override", ["train.batch_size=0", "train.micro_batch_size=0", "train.steps=0", "train.save_every=0", "optim.warmup_steps=-1"]
)
def test_sft_impossible_sizes_are_config_errors(tmp_path, override):
    # Each used to crash with a bare ValueError/ZeroDivisionError traceback, or run zero steps.
    result = invoke("sft", f"run.output_dir={tmp_path / 'run'}", "data.tiny_size=8", override)
    assert_user_error(result, override.split("=")[0])


# --- Output paths that cannot be written: one message, never a traceback ----------------------


def _rows(tmp_path) -> Path:
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"problem": "1+1?", "answer": "2", "response": "\\\\boxed{2}"}\n')
    return rows


def _unwritable_commands(rows: Path, out: Path) -> dict[str, list[str]]:
    """Each command with its output under ``out`` (a file, or a read-only directory)."""
    tiny = ["run.torch_threads=1", "run.progress=false", "train.steps=1"]
    return {
        "rl": ["rl", f"run.output_dir={out}", *tiny],
        "sft": ["sft", f"run.output_dir={out}", *tiny, "data.tiny_size=8"],
        "eval": ["eval", "--data", str(rows), "--out", str(out), "--checker", "exact", "--max-tokens", "4"],
        "score": ["score", str(rows), "--out", str(out / "scored.jsonl"), "--checker", "exact"],
        "curate": ["curate", str(rows), "--out", str(out / "pool.jsonl")],
    }


@pytest.mark.parametrize("command", ["rl", "sft", "eval", "score", "curate"])
def test_an_output_directory_that_is_an_existing_file_is_named(tmp_path, command):
    """run.output_dir / --out naming a file gave a raw FileExistsError traceback."""
    in_the_way = tmp_path / "afile"
    in_the_way.write_text("keep me\n")
    result = invoke(*_unwritable_commands(_rows(tmp_path), in_the_way)[command])
    assert_user_error(result, f"cannot write {in_the_way}", "choose another output path")
    assert in_the_way.read_text() == "keep me\n"


_ON_A_READ_ONLY_AND_A_FULL_DISK = """
import json, subprocess, sys
from pathlib import Path
read_only, full, commands = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(full)], check=True)
from typer.testing import CliRunner
from slowthink.cli import app
results = {}
for name, args in commands.items():
    result = CliRunner().invoke(app, args)
    results[name] = [result.exit_code, result.output]
print("RESULTS " + json.dumps(results))
"""


@pytest.mark.slow
def test_a_read_only_output_directory_and_a_full_disk_are_named(tmp_path):
    """A read-only directory: exit 2 naming the path (was a raw OSError traceback in rl, sft,
    eval and score). A full disk: "no space left on PATH" and exit 1, as cli/errors.py says
    (the training commands exited 2). Both on real tmpfs mounts in a private mount namespace."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no mount namespaces here")
    read_only, full = tmp_path / "ro", tmp_path / "full"
    read_only.mkdir()
    full.mkdir()
    commands = {f"ro-{name}": args for name, args in _unwritable_commands(_rows(tmp_path), read_only / "out").items()}
    commands["full-sft"] = ["sft", f"run.output_dir={full / 'run'}", "run.torch_threads=1", "run.progress=false", "train.steps=1", "data.tiny_size=8"]
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", _ON_A_READ_ONLY_AND_A_FULL_DISK, str(read_only), str(full), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if "mount" in done.stderr and done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr[-200:]}")
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULTS ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(line.removeprefix("RESULTS "))
    for name, (code, output) in results.items():
        assert "Traceback" not in output, (name, output)
        if name.startswith("ro-"):
            assert code == 2 and f"error: cannot write {read_only / 'out'}" in output and "read-only" in output, (name, code, output)
    code, output = results["full-sft"]
    assert code == 1 and "error: no space left on " + str(full / "run") in output, output


def test_full_disk_exits_1_as_documented():
    import errno

    from slowthink.durable import NoSpaceError

    assert exit_code_for(OSError(errno.ENOSPC, "No space left on device", "x")) == 1
    assert exit_code_for(NoSpaceError("runs/x/checkpoints")) == 1
    # torch's zip writer, writing a Python file: the ENOSPC is only the context of its RuntimeError.
    with pytest.raises(RuntimeError) as wrapped:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")  # noqa: B904
    assert exit_code_for(wrapped.value) == 1
    assert exit_code_for(RuntimeError("unexpected pos 576 vs 534")) is None  # no ENOSPC in sight: a bug


# --- One guard for every command's output path (durable.check_output) -------------------------


def _pool(tmp_path) -> Path:
    pool = tmp_path / "data" / "pool.jsonl"
    pool.parent.mkdir()
    rows = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 7)]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pool


def _same_file_spellings(tmp_path, pool: Path) -> dict[str, Path]:
    link, hard = tmp_path / "link.jsonl", tmp_path / "hard.jsonl"
    link.symlink_to(pool)
    hard.hardlink_to(pool)
    return {"same": pool, "relative": tmp_path / "data" / ".." / "data" / "pool.jsonl", "symlink": link, "hardlink": hard}


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hardlink"])
@pytest.mark.parametrize("command", ["curate", "curate-report", "distill-tir", "score"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, command, spelling):
    """`curate POOL --out POOL` lost 6 of 18 rows with exit 0; every command now refuses it."""
    pool = _pool(tmp_path)
    before = pool.read_bytes()
    out = _same_file_spellings(tmp_path, pool)[spelling]
    args = {
        "curate": ["curate", str(pool), "--out", str(out)],
        "curate-report": ["curate", str(pool), "--out", str(tmp_path / "new.jsonl"), "--report", str(out)],
        "distill-tir": ["distill-tir", "--data", str(pool), "--out", str(out), "--checker", "exact"],
        "score": ["score", str(pool), "--out", str(out), "--checker", "exact"],
    }[command]
    assert_user_error(invoke(*args), "is the input file", "choose another path")
    assert pool.read_bytes() == before


def test_eval_refuses_data_that_its_summary_would_overwrite(tmp_path):
    data = tmp_path / "summary.json"
    data.write_text('[{"id": "p1", "problem": "1+1?", "answer": "2"}]')
    before = data.read_bytes()
    assert_user_error(invoke("eval", "--data", str(data), "--out", str(tmp_path), "--checker", "exact"), "is the input file")
    assert data.read_bytes() == before


def test_a_fresh_run_never_deletes_its_own_model(tmp_path):
    """model.path inside the run directory's checkpoints: run.overwrite=true would delete the
    model before (or while) it is loaded."""
    from slowthink.training.checkpoint import write_manifest

    run_dir = tmp_path / "run"
    model = run_dir / "checkpoints" / "step_000002"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    write_manifest(model)
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    result = invoke("sft", f"run.output_dir={run_dir}", f"model.path={model}", "run.overwrite=true", "train.steps=1")
    assert_user_error(result, f"model.path={model} lies in {run_dir / 'checkpoints'}")
    assert (model / "config.json").is_file() and (run_dir / "metrics.jsonl").is_file()


def test_a_symlinked_out_is_written_through(tmp_path):
    pool = _pool(tmp_path)
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("old\n")
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    result = invoke("curate", str(pool), "--out", str(link), "--report", str(tmp_path / "r.md"), "--skip", "near_duplicate")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target
    assert len(target.read_text().splitlines()) >= 1 and target.read_text() != "old\n"


def test_out_dev_stdout_is_written_to_stdout(tmp_path):
    """A special file cannot be renamed over: it is written directly. (As root, the rename
    replaced /dev/stdout itself with a regular file.) The test uses its own link of the same
    kind as /dev/stdout, so that a failure cannot damage the machine's."""
    import subprocess
    import sys

    pool = _pool(tmp_path)
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    done = subprocess.run(
        [sys.executable, "-m", "slowthink.cli", "curate", str(pool), "--out", str(stdout), "--report", str(tmp_path / "r.md")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert '"id": "p1"' in done.stdout
    assert stdout.is_symlink() and os.readlink(stdout) == "/proc/self/fd/1"


def test_a_sandbox_that_cannot_start_exits_1_like_every_environment_failure(tmp_path, monkeypatch):
    """``sandbox run`` printed "sandbox unavailable: ..." and exited 3, its own code beside
    cli/errors.py's: a sandbox that cannot start is an environment failure, exit 1."""
    from slowthink.sandbox import launch

    # bubblewrap's own probe is machine-dependent; say it cannot run here, and ask for it by name.
    monkeypatch.setattr(launch, "bwrap_problem", lambda *args, **kwargs: "bwrap is not installed (apt-get install bubblewrap)")
    cell = tmp_path / "cell.py"
    cell.write_text("print(1)\n")
    result = invoke("sandbox", "run", str(cell), "--set", "backend=bwrap")
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert "error: sandbox backend 'bwrap' requested but unusable: bwrap is not installed" in result.output, result.output


def test_a_lost_rank_is_an_environment_failure_that_says_how_to_resume():
    from slowthink.cli.errors import message_for

    # gloo's error in a surviving rank when another node's rank died (tests/recipes/test_rl_two_nodes.py).
    error = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:42386: Connection reset "
        "by peer. This is typically caused by a remote worker hanging or bugs in the application. Check the logs of the remote "
        "worker before reporting an error. GLHF!"
    )
    assert exit_code_for(error) == 1
    message = message_for(error)
    assert message.startswith("lost contact with another rank (Read error [127.0.0.1]:42386: Connection reset by peer): "), message
    assert "restart every node with --resume" in message and "GLHF" not in message
    # A peer that sends nothing (a frozen or cut-off node) for distributed.timeout_minutes.
    silent = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation to complete"
    )
    assert exit_code_for(silent) == 1
    assert message_for(silent).startswith("no answer from another rank within distributed.timeout_minutes (Timed out waiting 3000ms"), message_for(
        silent
    )
    assert exit_code_for(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None  # a bug keeps its traceback
