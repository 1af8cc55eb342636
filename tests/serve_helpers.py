"""``slowthink serve`` in a subprocess on a free localhost port, for the tests that need a real
server (tests/test_serve.py, tests/test_serve_stream.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(*args: str) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a running ``slowthink serve ARGS``; the
    process is always stopped at the end."""
    port = free_port()
    env = {**os.environ, "SLOWTHINK_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from slowthink.cli import app; app()", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"slowthink serve exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"slowthink serve not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
