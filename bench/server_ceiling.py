"""The trivial-Flask ping ceiling under each candidate server, side by side in one run.

    .venv/bin/python bench/server_ceiling.py                  # 3 rounds x 3 s per candidate
    .venv/bin/python bench/server_ceiling.py --rounds 1 --seconds 2 --slow 50

All candidates serve ``bench/trivial_app.py`` at once, each on its own free loopback port; the
measured slices alternate between them (round after round), so every candidate sees the same
machine. Then, per candidate, ``--slow`` connections that hold half-sent headers and as many
that trickle a request body one byte a second are opened, and the ping is measured again beside
them: how many answers, their p99, and errors (a server whose threads wait on slow clients stops
answering here). Loopback only; every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import Measurement, merged, percentile, run_workload  # noqa: E402
from procstat import descendants, load_average, rss_mib  # noqa: E402
from server import HOST, free_port  # noqa: E402
from workloads import Single, Step, build_request, connect, send  # noqa: E402

from index.ops.slow_clients import SlowClients  # noqa: E402

BENCH = Path(__file__).resolve().parent
START_TIMEOUT_SECONDS = 30.0


@dataclass
class Candidate:
    name: str
    command: list[str]
    port: int = 0
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=BENCH, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                connection = connect(self.port, timeout=2.0)
                try:
                    status = send(connection, build_request("GET", "/v1/_ping")).status
                finally:
                    connection.close()
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT_SECONDS:.0f} s")

    def pids(self) -> list[int]:
        """The server process and all its descendants (the workers)."""
        assert self.process is not None
        return descendants(self.process.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pids())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


def candidates(workers: int, threads: int) -> list[Candidate]:
    bin_dir = Path(sys.executable).parent
    found = []
    gunicorn, granian = shutil.which("gunicorn", path=str(bin_dir)), shutil.which("granian", path=str(bin_dir))
    if gunicorn:
        port = free_port()
        found.append(Candidate(f"gunicorn gthread {workers}x{threads}", [
            gunicorn, "--bind", f"{HOST}:{port}", "--workers", str(workers), "--worker-class", "gthread",
            "--threads", str(threads), "--keep-alive", "5", "trivial_app:app"], port))
    if granian:
        for count in sorted({workers, 1}, reverse=True):
            port = free_port()
            found.append(Candidate(f"granian wsgi {count} worker(s)", [
                granian, "--interface", "wsgi", "--host", HOST, "--port", str(port), "--workers", str(count),
                "--http", "1", "--no-ws", "--log-level", "warning", "trivial_app:app"], port))
        for count in sorted({workers, 1}, reverse=True):
            port = free_port()
            found.append(Candidate(f"granian rsgi+bridge {count}w", [
                granian, "--interface", "rsgi", "--host", HOST, "--port", str(port), "--workers", str(count),
                "--http", "1", "--no-ws", "--log-level", "warning", "--http1-header-read-timeout", "10000",
                "trivial_app:bridged"], port))
        port = free_port()
        found.append(Candidate(f"granian rsgi+bridge inline {workers}w", [
            granian, "--interface", "rsgi", "--host", HOST, "--port", str(port), "--workers", str(workers),
            "--http", "1", "--no-ws", "--log-level", "warning", "--http1-header-read-timeout", "10000",
            "trivial_app:bridged_inline"], port))
    return found


def ping_workload() -> Single:
    return Single("ping", lambda client: [Step("GET /v1/_ping", build_request("GET", "/v1/_ping"), 200)])


def start_all(servers: list[Candidate]) -> None:
    for server in servers:
        server.start()


def stop_all(servers: list[Candidate]) -> None:
    for server in servers:
        server.stop()


def measure_round(servers: list[Candidate], clients: int, seconds: float,
                  results: dict[str, list[Measurement]]) -> None:
    """One slice of the ping under each candidate, one after the other."""
    ping = ping_workload()
    for server in servers:
        results.setdefault(server.name, []).append(
            run_workload(ping, server.port, clients, 1.0, seconds, server_pids=server.pids()))


def measure_beside_slow(server: Candidate, count: int, clients: int, seconds: float) -> tuple[Measurement, float]:
    """The ping again, with ``count`` half-sent-header and ``count`` trickling connections open;
    and how much the server's memory grew meanwhile."""
    idle_rss = server.rss_mib()
    with SlowClients(server.port, count, count, interval=1.0, limit_seconds=seconds + 10):
        time.sleep(0.5)
        # A server whose threads all wait on slow clients answers nothing: 5 s without an answer is an error.
        measured = run_workload(ping_workload(), server.port, clients, 0.5, seconds, server_pids=server.pids(),
                                timeout=5.0)
        grown = server.rss_mib() - idle_rss
    return measured, grown


def fastest(servers: list[Candidate], results: dict[str, list[Measurement]]) -> tuple[str, float]:
    """The candidate with the most pings a second over all its slices, and that rate."""
    rates = {server.name: merged(results[server.name]).requests_per_second for server in servers}
    name = max(rates, key=rates.__getitem__)
    return name, rates[name]


def table(servers: list[Candidate], results: dict[str, list[Measurement]],
          slow: dict[str, tuple[Measurement, float]]) -> str:
    header = f"{'server (trivial Flask ping)':<28} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10}"
    if slow:
        header += f" | {'with slow':>9} {'p99 ms':>7} {'err':>4} {'+RSS MiB':>8}"
    lines = [header, "-" * len(header)]
    for server in servers:
        total = merged(results[server.name])
        latencies = sorted(total.latencies)
        line = (f"{server.name:<28} {total.requests_per_second:>7.0f} {percentile(latencies, .5):>7.2f} "
                f"{percentile(latencies, .99):>7.2f} {total.server_us_per_request:>10.0f}")
        if server.name in slow:
            measured, grown = slow[server.name]
            line += (f" | {measured.requests_per_second:>9.0f} {percentile(sorted(measured.latencies), .99):>7.2f} "
                     f"{measured.errors:>4} {grown:>8.1f}")
        lines.append(line)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per slice")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--slow", type=int, default=50,
                        help="half-sent-header connections, and as many trickling bodies (0: skip)")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 10 and 0 < args.seconds <= 60 and 0 <= args.slow <= 1000):
        parser.error("--rounds 1..10, --seconds (0, 60], --slow 0..1000")
    print(f"# {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {load_average()}, "
          f"{os.cpu_count()} CPUs; {args.clients} keep-alive clients, {args.rounds} x {args.seconds:g} s "
          f"per candidate, interleaved")
    servers = candidates(args.workers, args.threads)
    results: dict[str, list[Measurement]] = {}
    slow: dict[str, tuple[Measurement, float]] = {}
    try:
        start_all(servers)
        for _ in range(args.rounds):
            measure_round(servers, args.clients, args.seconds, results)
        if args.slow:
            for server in servers:
                slow[server.name] = measure_beside_slow(server, args.slow, args.clients, args.seconds)
    finally:
        stop_all(servers)
    print(table(servers, results, slow))
    if args.slow:
        print(f"(with slow: {args.slow} connections holding half-sent headers and {args.slow} trickling a "
              f"body one byte a second, opened before the ping was measured again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
