"""Load test of ``slowthink serve`` on 127.0.0.1: is a small request still served while big,
abandoned and oversized requests arrive?

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_serve.py [--seconds 20] [--src OTHER/src]

Starts ``slowthink serve --model tiny`` (one torch thread) on a free port, then:
  alone      the small request (greedy, 4 new tokens) ``--probes`` times, nothing else running
  loaded     the same small request while, at once,
             - ``--busy`` clients loop big requests (n=8, 200 tokens, sampled) to the end,
             - ``--abandon`` clients send n=64 x 1000-token requests and hang up after 0.5 s,
             - one client sends oversized requests (prompts x n over the cap, max_tokens over
               the cap), which must come back 400 at once;
  drained    after the load stops: the server's counters (``GET /stats``) must show every
             abandoned request cancelled and no sequence left decoding.
Latencies are p50/p95 in seconds. ``--src`` runs the server from another checkout's
``src`` (for a before/after comparison; that server may lack ``/stats``). Core use by
other processes is reported, since the development machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_usage import busy_jiffies, tree_jiffies  # noqa: E402

SMALL = {"model": "tiny", "prompt": "<|user|>12+34=<|assistant|>", "max_tokens": 4, "temperature": 0}
BIG = {"model": "tiny", "prompt": "<|user|>12+34+56=<|assistant|>", "max_tokens": 200, "temperature": 1.0, "n": 8}
ABANDONED = {"model": "tiny", "prompt": "<|user|>12+34+56=<|assistant|>", "max_tokens": 1000, "temperature": 1.0, "n": 64}
OVERSIZED = [{"model": "tiny", "prompt": ["1+1="] * 512, "n": 128, "max_tokens": 16}, {"model": "tiny", "prompt": "1+1=", "max_tokens": 5000}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, src: str | None) -> subprocess.Popen:
    env = {**os.environ, "SLOWTHINK_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-c", "from slowthink.cli import app; app()", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"slowthink serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("slowthink serve was not ready after 120 s")


def timed_small(url: str, timeout_s: float) -> float:
    """Seconds for one small request (``timeout_s`` when it did not finish in time)."""
    started = time.monotonic()
    try:
        reply = httpx.post(f"{url}/v1/completions", json=SMALL, timeout=timeout_s)
        reply.raise_for_status()
    except httpx.TimeoutException:
        return timeout_s
    return time.monotonic() - started


def p50_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def stats(url: str) -> dict | None:
    try:
        reply = httpx.get(f"{url}/stats", timeout=5)
    except httpx.TransportError:
        return None
    return reply.json() if reply.status_code == 200 else None


def run_load(url: str, args: argparse.Namespace) -> dict:
    """The loaded phase; returns the probes' latencies and what the load clients saw."""
    stop = threading.Event()
    seen = {"big_done": 0, "big_failed": 0, "abandoned": 0, "oversized_400": 0, "oversized_other": 0}
    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            seen[key] += 1

    def busy() -> None:
        while not stop.is_set():
            try:
                httpx.post(f"{url}/v1/completions", json=BIG, timeout=300).raise_for_status()
                count("big_done")
            except httpx.HTTPError:
                count("big_failed")

    def abandon() -> None:
        while not stop.is_set():
            try:
                httpx.post(f"{url}/v1/completions", json=ABANDONED, timeout=httpx.Timeout(0.5, connect=10))
            except httpx.ReadTimeout:
                count("abandoned")
            stop.wait(2.0)

    def oversize() -> None:
        while not stop.is_set():
            for body in OVERSIZED:
                try:
                    code = httpx.post(f"{url}/v1/completions", json=body, timeout=60).status_code
                except httpx.HTTPError:  # a server without caps runs it (for minutes)
                    code = None
                count("oversized_400" if code == 400 else "oversized_other")
            stop.wait(1.0)

    # Daemons: against a server that cannot cancel, a load client may wait for many minutes.
    threads = [threading.Thread(target=busy, daemon=True) for _ in range(args.busy)]
    threads += [threading.Thread(target=abandon, daemon=True) for _ in range(args.abandon)]
    threads.append(threading.Thread(target=oversize, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the load build up
    latencies = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline or len(latencies) < 3:
        latencies.append(timed_small(url, args.probe_timeout))
        time.sleep(0.2)
    stop.set()
    give_up = time.monotonic() + args.drain_timeout
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    with lock:
        return {"latencies": latencies, **seen, "clients_still_waiting": sum(t.is_alive() for t in threads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the loaded phase")
    parser.add_argument("--probes", type=int, default=10, help="small requests in the alone phase")
    parser.add_argument("--busy", type=int, default=2, help="clients looping big requests")
    parser.add_argument("--abandon", type=int, default=3, help="clients that hang up on n=64 requests")
    parser.add_argument("--probe-timeout", type=float, default=120.0, help="a probe slower than this counts as this")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="after the loaded phase, wait at most this long for the load clients")
    parser.add_argument("--src", default=None, help="run the server from this src directory instead")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object too")
    args = parser.parse_args()

    port = free_port()
    server = start_server(port, args.src)
    url = f"http://127.0.0.1:{port}"
    hz = os.sysconf("SC_CLK_TCK")
    try:
        timed_small(url, 60)  # warm-up
        alone = [timed_small(url, 60) for _ in range(args.probes)]
        t0, busy0, mine0 = time.monotonic(), busy_jiffies(), tree_jiffies(os.getpid())
        loaded = run_load(url, args)
        elapsed = time.monotonic() - t0
        other_cores = ((busy_jiffies() - busy0) - (tree_jiffies(os.getpid()) - mine0)) / hz / elapsed
        # Abandoned requests still decoding must be cancelled within a few chunks.
        drained, deadline = stats(url), time.monotonic() + 30
        alive = server.poll() is None
        while drained is not None and drained["active_sequences"] and time.monotonic() < deadline:
            time.sleep(0.2)
            drained = stats(url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    a50, a95 = p50_p95(alone)
    l50, l95 = p50_p95(loaded["latencies"])
    print("small request (greedy, 4 tokens) latency, s    p50      p95    samples")
    print(f"  alone                                     {a50:7.3f}  {a95:7.3f}  {len(alone):5d}")
    print(f"  under load                                {l50:7.3f}  {l95:7.3f}  {len(loaded['latencies']):5d}")
    print(
        f"load: {args.busy} clients looping n=8 x 200 tokens ({loaded['big_done']} finished, "
        f"{loaded['big_failed']} failed or timed out), "
        f"{loaded['abandoned']} requests of n=64 x 1000 tokens abandoned after 0.5 s, "
        f"oversized requests answered 400: {loaded['oversized_400']} (other: {loaded['oversized_other']}); "
        f"load clients still waiting {args.drain_timeout:.0f} s after the load stopped: "
        f"{loaded['clients_still_waiting']}{'' if alive else ' (the server died)'}"
    )
    if drained is None:
        print("server counters: not available (no /stats)")
    else:
        print(
            f"server counters after the load: cancelled_requests={drained['cancelled_requests']} "
            f"cancelled_sequences={drained['cancelled_sequences']} active_sequences={drained['active_sequences']} "
            f"completed_requests={drained['completed_requests']}"
        )
    print(f"other processes used {other_cores:.2f} cores on average during the loaded phase ({os.cpu_count()} cores)")
    if args.json:
        print(
            json.dumps(
                {"alone_p50": a50, "alone_p95": a95, "loaded_p50": l50, "loaded_p95": l95, **loaded, "stats": drained, "other_cores": other_cores}
            )
        )


if __name__ == "__main__":
    main()
