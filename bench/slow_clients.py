"""Slow clients against ``make run`` at full scale: ping and push handshakes beside them.

    .venv/bin/python bench/slow_clients.py                      # 500 half-sent headers, 100 trickling bodies, 60 s
    .venv/bin/python bench/slow_clients.py --partial 50 --trickling 50 --seconds 10

Starts the server as ``make run`` does (bench/server.py's Server, defaults: 2 workers, 4
threads, header timeout 20 s, minimum body rate 500 B/s) on a fresh data dir, then holds
``--partial`` connections that sent half of their request headers and ``--trickling`` ones that
send a 1,000-byte body one byte a second, for ``--seconds``; each one the server closes is
replaced at once (a persistent attacker). Meanwhile one client repeats ``GET /v1/_ping`` and one
the push handshake (PUT repo/, 3 token checks, PUT images), each on its own keep-alive
connection. Prints their latency percentiles and errors, the workers' resident memory before and
at the end, and how many slow connections the server closed and after how long. Loopback only;
every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dataset import BenchUser, make_data_dir  # noqa: E402
from loadgen import percentile  # noqa: E402
from procstat import load_average, rss_mib  # noqa: E402
from server import Server  # noqa: E402
from workloads import (  # noqa: E402
    ClientResult,
    HttpError,
    PushHandshake,
    Single,
    Step,
    build_request,
    connect,
    prime_credentials,
)

from index.ops.slow_clients import SlowClients  # noqa: E402


def repeat(op, port: int, seconds: float, result: ClientResult, latencies: list[float]) -> None:
    """Run ``op`` back to back on one keep-alive connection for ``seconds`` (bounded count)."""
    connection = connect(port, timeout=10.0)
    end = time.monotonic() + seconds
    for _ in range(10_000_000):
        if time.monotonic() >= end:
            break
        started = time.perf_counter()
        try:
            op(connection, result, True)
        except (OSError, http.client.HTTPException, HttpError, ValueError) as exc:
            result.errors += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
            connection.close()
            continue
        latencies.append(time.perf_counter() - started)
    connection.close()


@dataclass
class SlowClientFigures:
    """What one run beside slow clients measured."""

    partial: int
    trickling: int
    seconds: float
    held_at_start: tuple[int, int]
    held_low: list[int]
    closed: list[float]          # seconds after opening at which the server closed each one
    answered_408: int
    ping: tuple[ClientResult, list[float]]
    push: tuple[ClientResult, list[float]]
    rss_before: float
    rss_peak: float
    rss_end: float
    workers: int

    def p99_ms(self) -> tuple[float, float]:
        return percentile(sorted(self.ping[1]), .99), percentile(sorted(self.push[1]), .99)

    def errors(self) -> int:
        return self.ping[0].errors + self.push[0].errors


def measure(server: Server, user: BenchUser, partial: int, trickling: int, seconds: float) -> SlowClientFigures:
    """Hold the slow connections for ``seconds`` while a ping client and a push client repeat."""
    pids = server.worker_pids()
    idle = rss_mib(pids)
    ping = Single("ping", lambda c: [Step("GET /v1/_ping", build_request("GET", "/v1/_ping"), 200)])
    push = PushHandshake([user], server.port)
    ping_result, push_result = ClientResult(), ClientResult()
    ping_latencies: list[float] = []
    push_latencies: list[float] = []
    with SlowClients(server.port, partial, trickling, interval=1.0,
                     limit_seconds=seconds + 30, reopen=True) as slow:
        time.sleep(1.0)
        held_at_start = slow.open_count()
        threads = [threading.Thread(target=repeat, args=(ping.prepare(0), server.port, seconds,
                                                         ping_result, ping_latencies)),
                   threading.Thread(target=repeat, args=(push.prepare(0), server.port, seconds,
                                                         push_result, push_latencies))]
        for thread in threads:
            thread.start()
        peak = idle
        held_low = list(held_at_start)
        for _ in range(int(seconds * 2) + 1):
            time.sleep(0.5)
            peak = max(peak, rss_mib(pids))
            now = slow.open_count()
            held_low = [min(a, b) for a, b in zip(held_low, now, strict=False)]
            if not any(thread.is_alive() for thread in threads):
                break
        for thread in threads:
            thread.join(timeout=30)
        end = rss_mib(pids)
        closed = sorted(slow.closed_at.values())
        answered_408 = sum(1 for answer in slow.answers.values() if answer.startswith(b"HTTP/1.1 408 "))
    return SlowClientFigures(partial, trickling, seconds, held_at_start, held_low, closed, answered_408,
                             (ping_result, ping_latencies), (push_result, push_latencies),
                             idle, peak, end, len(pids))


def report(figures: SlowClientFigures) -> str:
    lines = [f"slow clients: {figures.partial} half-sent headers + {figures.trickling} trickling bodies "
             f"(1 byte/s), held {figures.seconds:g} s, each one closed by the server replaced at once",
             f"  open at the start: {figures.held_at_start[0]} + {figures.held_at_start[1]}; lowest while "
             f"measuring: {figures.held_low[0]} + {figures.held_low[1]}"]
    closed = figures.closed
    if closed:
        lines.append(f"  closed by the server: {len(closed)} (first after {closed[0]:.1f} s, median "
                     f"{closed[len(closed) // 2]:.1f} s), {figures.answered_408} of them answered 408 first")
    for name, (result, latencies) in (("GET /v1/_ping", figures.ping),
                                      ("push handshake (5 requests)", figures.push)):
        ordered = sorted(latencies)
        lines.append(f"  {name:<28} {len(ordered):>6} done, {result.errors} errors, "
                     f"p50 {percentile(ordered, .5):6.2f} ms, "
                     f"p99 {percentile(ordered, .99):6.2f} ms, max {percentile(ordered, 1.0):7.2f} ms")
        if result.first_error:
            lines.append(f"    first error: {result.first_error[:200]}")
    lines.append(f"  workers' RSS: {figures.rss_before:.1f} MiB before, peak {figures.rss_peak:.1f} MiB, "
                 f"{figures.rss_end:.1f} MiB at the end ({figures.workers} workers)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partial", type=int, default=500)
    parser.add_argument("--trickling", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if not (0 <= args.partial <= 2000 and 0 <= args.trickling <= 1000 and 1 <= args.seconds <= 600):
        parser.error("--partial 0..2000, --trickling 0..1000, --seconds 1..600")
    print(f"# {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {load_average()}, "
          f"{os.cpu_count()} CPUs")
    user = BenchUser("bench0", "benchpass0")
    workdir = Path(tempfile.mkdtemp(prefix="index-slow-bench-"))
    try:
        data_dir, _, _ = make_data_dir(workdir, "small", 100, [user])
        server = Server(data_dir, workdir / "server.log")
        server.start()
        try:
            prime_credentials(server.port, [user])
            figures = measure(server, user, args.partial, args.trickling, args.seconds)
        finally:
            server.stop()
        print(report(figures))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if figures.errors() else 0


if __name__ == "__main__":
    sys.exit(main())
