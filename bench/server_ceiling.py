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
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_bench import HOST, Connection, Single, Step, build_request, free_port, percentile, run_workload  # noqa: E402

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
                connection = Connection(self.port, timeout=2.0)
                status, _, _ = connection.exchange(build_request("GET", "/v1/_ping"))
                connection.close()
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT_SECONDS:.0f} s")

    def pids(self) -> list[int]:
        """The server process and all its descendants (the workers)."""
        assert self.process is not None
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    queue += [int(child) for child in task.read_text().split()]
                except OSError:
                    pass
        return found

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

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
    return found


class SlowClients:
    """``count`` connections with half-sent headers and ``count`` trickling a body, held open."""

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self.port, self.count, self.seconds = port, count, seconds
        self.sockets: list[socket.socket] = []
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        for index in range(2 * self.count):
            try:
                sock = socket.create_connection((HOST, self.port), timeout=5)
            except OSError:
                continue
            if index % 2 == 0:
                sock.sendall(b"GET /v1/_ping HTTP/1.1\r\nHost: x\r\n")
            else:
                sock.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{")
            self.sockets.append(sock)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        for _ in range(int(self.seconds) + 1):
            if self._stop.wait(1.0):
                return
            for index, sock in enumerate(self.sockets):
                if index % 2 == 1 and sock.fileno() != -1:
                    try:
                        sock.send(b" ")
                    except OSError:
                        sock.close()
                        self.closed_by_server += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def ping_workload() -> Single:
    return Single("ping", lambda client: [Step("GET /v1/_ping", build_request("GET", "/v1/_ping"), 200)])


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
    print(f"# {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs; "
          f"{args.clients} keep-alive clients, {args.rounds} x {args.seconds:g} s per candidate, interleaved")
    servers = candidates(args.workers, args.threads)
    ping = ping_workload()
    results: dict[str, list] = {server.name: [] for server in servers}
    slow: dict[str, tuple] = {}
    try:
        for server in servers:
            server.start()
        for _ in range(args.rounds):
            for server in servers:
                results[server.name].append(run_workload(ping, server.port, args.clients, 1.0, args.seconds,
                                                          server_pids=server.pids()))
        if args.slow:
            for server in servers:
                idle_rss = server.rss_mib()
                with SlowClients(server.port, args.slow, args.seconds + 3) as held:
                    time.sleep(0.5)
                    measured = run_workload(ping, server.port, args.clients, 0.5, args.seconds,
                                            server_pids=server.pids())
                    slow[server.name] = (measured, server.rss_mib() - idle_rss, len(held.sockets))
    finally:
        for server in servers:
            server.stop()
    header = f"{'server':<28} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10}"
    if args.slow:
        header += f" | {'with slow':>9} {'p99 ms':>7} {'err':>4} {'+RSS MiB':>8}"
    print(header)
    print("-" * len(header))
    for server in servers:
        slices = results[server.name]
        requests = sum(m.requests for m in slices)
        seconds = sum(m.seconds for m in slices)
        latencies = sorted(x for m in slices for x in m.latencies)
        cpu = sum(m.server_cpu for m in slices)
        line = (f"{server.name:<28} {requests / seconds:>7.0f} {percentile(latencies, .5):>7.2f} "
                f"{percentile(latencies, .99):>7.2f} {1e6 * cpu / max(1, requests):>10.0f}")
        if server.name in slow:
            measured, grown, held = slow[server.name]
            line += (f" | {measured.requests_per_second:>9.0f} {percentile(sorted(measured.latencies), .99):>7.2f} "
                     f"{measured.errors:>4} {grown:>8.1f}")
        print(line)
    if args.slow:
        print(f"(with slow: {args.slow} connections holding half-sent headers and {args.slow} trickling a "
              f"body one byte a second, opened before the ping was measured again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
