"""Two "nodes" on localhost: two torchrun agents (``--nnodes 2``, one rank each) meeting by c10d
rendezvous on 127.0.0.1, as on a real cluster (docs/scale.md, "Launching").

An RL run with FSDP2 across the two agents trains exactly as one node with two ranks. When
either node's agent is killed mid-run (a lost node; the head hosts the rendezvous, the other
does not), its rank goes with it and the other node's rank and agent fail within seconds;
when a node freezes (nothing closes its connections) the other fails after
``distributed.timeout_minutes``. Either way the survivor says so in one line, and both nodes
restarted with ``--resume`` finish the run from the last checkpoint, equal to an
uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from rl_helpers import TINY_RL  # noqa: E402
from spawn_helpers import free_port  # noqa: E402

from slowthink.training.checkpoint import latest_checkpoint  # noqa: E402

TIMEOUT_S = 300
LOST_NODE_S = 120  # from the kill to both agents' exit: well under torchrun's 300 s exit barrier
STEPS = 5
OPTIONS = [*TINY_RL, f"train.steps={STEPS}", "distributed.strategy=fsdp", "model.logprob_chunk_size=8", "distributed.timeout_minutes=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SLOWTHINK_TORCH_THREADS": "1"}


def _torchrun(*launch: str, run: Path, resume: bool = False, options: tuple[str, ...] = ()) -> subprocess.Popen:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), *launch, "-m", "slowthink.cli", "rl", f"run.output_dir={run}", *OPTIONS, *options, *(["--resume"] if resume else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)


def _two_nodes(run: Path, resume: bool = False, options: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """Two agents, one rank each, meeting at a c10d rendezvous on localhost.

    The first is the head node: it hosts the rendezvous store before the second starts, as
    on a cluster.
    """
    port = free_port()
    launch = ("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run.name)
    head = _torchrun(*launch, run=run, resume=resume, options=options)
    deadline = time.monotonic() + 60
    while not _listening(port):
        assert time.monotonic() < deadline and head.poll() is None, "the head node's rendezvous never listened"
        time.sleep(0.1)
    return [head, _torchrun(*launch, run=run, resume=resume, options=options)]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _finish(processes: list[subprocess.Popen], seconds: float = TIMEOUT_S) -> list[int]:
    codes = []
    deadline = time.monotonic() + seconds
    for process in processes:
        try:
            _, err = process.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for other in processes:
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
            pytest.fail(f"a torchrun agent did not finish in {seconds} s (a hang after a lost node?)")
        codes.append(process.returncode)
        process.last_stderr = err
    return codes


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run) / "model.safetensors")


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def one_node(tmp_path_factory) -> Path:
    """One node, two ranks: the run every two-node run must equal."""
    run = tmp_path_factory.mktemp("one_node") / "run"
    single = _torchrun("--nproc-per-node", "2", "--master-port", str(free_port()), run=run)
    assert _finish([single]) == [0], single.last_stderr[-3000:]
    return run


@pytest.mark.slow
def test_two_nodes_train_as_one(tmp_path, one_node):
    # Two nodes of one rank each: the same collectives in the same order, the same weights.
    two_nodes = tmp_path / "two_nodes"
    agents = _two_nodes(two_nodes)
    assert _finish(agents) == [0, 0], agents[0].last_stderr[-3000:] + agents[1].last_stderr[-3000:]
    assert latest_checkpoint(two_nodes).name == f"step_{STEPS:06d}"
    _assert_equal(_weights(two_nodes), _weights(one_node))


# How a node is lost: which agent, and how. A killed node closes its connections; a frozen
# one (a power cut, a network partition) just stops answering.
# What the survivor says. The head node also hosts the c10d rendezvous store: when it is lost,
# the other node's agent may see the store gone before its rank sees the peer gone, and then
# exits with torchrun's own "connection to the C10d store has failed" (its rank dies with it).
LOSSES = {
    "head": (0, signal.SIGKILL, ("error: lost contact with another rank", "The connection to the C10d store has failed")),
    "other": (1, signal.SIGKILL, ("error: lost contact with another rank",)),
    "frozen": (1, signal.SIGSTOP, ("error: no answer from another rank within distributed.timeout_minutes",)),
}
FROZEN_TIMEOUT = ("distributed.timeout_minutes=0.5",)  # 30 s: the frozen node's peer waits that long, not 2 minutes


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_a_lost_node_ends_the_other_and_both_restart_from_the_last_checkpoint(tmp_path, one_node, loss):
    node, how, messages = LOSSES[loss]
    options = FROZEN_TIMEOUT if how == signal.SIGSTOP else ()
    run = tmp_path / "lost_node"
    agents = _two_nodes(run, options=options)
    deadline = time.monotonic() + TIMEOUT_S
    while (checkpoint := latest_checkpoint(run)) is None or checkpoint.name < "step_000002":
        assert time.monotonic() < deadline and all(a.poll() is None for a in agents), "the run never reached its step-2 checkpoint"
        time.sleep(0.2)
    ranks = [_ranks_of(agent) for agent in agents]  # torchrun starts each in a session of its own
    assert all(a.poll() is None for a in agents), "the run ended before the node could be lost"
    # The node lost after its step-2 checkpoint: its torchrun agent killed (its process group;
    # its rank must go with it), or the agent and its rank frozen.
    os.killpg(agents[node].pid, how)
    if how == signal.SIGSTOP:
        _signal_all(ranks[node], how)
    try:
        # The other node's rank fails at its next collective (gloo sees the connection closed,
        # or waits distributed.timeout_minutes for the frozen one), and its agent exits:
        # nothing waits for torchrun's exit barrier (300 s).
        survivor = agents[1 - node]
        [code] = _finish([survivor], LOST_NODE_S)
    finally:
        _signal_all([agents[node].pid], signal.SIGKILL)
        _signal_all([pid for pids in ranks for pid in pids], signal.SIGKILL)  # none may outlive the test
    assert code not in (0, None) and any(m in survivor.last_stderr for m in messages), survivor.last_stderr[-3000:]
    assert _finish([agents[node]]) == [-signal.SIGKILL]
    assert latest_checkpoint(run).name < f"step_{STEPS:06d}", "the lost node went unnoticed"

    # Both nodes restarted with --resume: the run finishes from its last checkpoint, as if never interrupted.
    agents = _two_nodes(run, resume=True, options=options)
    assert _finish(agents) == [0, 0], agents[0].last_stderr[-3000:] + agents[1].last_stderr[-3000:]
    assert latest_checkpoint(run).name == f"step_{STEPS:06d}"
    _assert_equal(_weights(run), _weights(one_node))


def _ranks_of(agent: subprocess.Popen) -> list[int]:
    """The worker processes a torchrun agent started."""
    found = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def _signal_all(ranks: list[int], how: signal.Signals) -> None:
    """Signal each rank's process group (a rank left running must not outlive the test)."""
    for pid in ranks:
        try:
            os.killpg(pid, how)
        except ProcessLookupError:
            pass
