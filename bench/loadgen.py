"""The load generator: client threads in a closed loop (the next request goes out when the previous
answer is read), a warm-up, a measured window, and what the server and this process spent in it."""
from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from procstat import cpu_seconds
from workloads import RESPONSE_TIMEOUT_SECONDS, ClientResult, HttpError, Workload, connect

MAX_OPS_PER_CLIENT = 5_000_000  # a bound on every measuring loop besides its duration


@dataclass
class Measurement:
    name: str
    clients: int
    seconds: float
    ops: int
    requests: int
    errors: int
    first_error: str
    latencies: list[float]
    step_latencies: dict[str, list[float]]
    sub_steps: bool
    server_cpu: float = 0.0   # CPU seconds the server workers used in the measured window
    client_cpu: float = 0.0   # CPU seconds this load generator used in it
    ceiling: float = 0.0      # req/s of /v1/_ping in the slices paired with this workload's
    ceiling_cpu: float = 0.0  # server CPU µs per ping request in those slices

    def add(self, other: Measurement) -> None:
        """Fold another slice of the same workload into this one."""
        self.seconds += other.seconds
        self.ops += other.ops
        self.requests += other.requests
        self.errors += other.errors
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.first_error = self.first_error or other.first_error
        self.latencies += other.latencies
        for name, values in other.step_latencies.items():
            self.step_latencies.setdefault(name, []).extend(values)

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float:
        return 1e6 * self.server_cpu / self.requests if self.requests else float("nan")

    @property
    def client_us_per_request(self) -> float:
        return 1e6 * self.client_cpu / self.requests if self.requests else float("nan")


def run_workload(workload: Workload, port: int, clients: int, warmup: float, duration: float,
                 on_measure: Callable[[], None] | None = None, server_pids: list[int] = (),
                 timeout: float = RESPONSE_TIMEOUT_SECONDS) -> Measurement:
    """Warm up, then measure: ``clients`` threads, each on its own keep-alive connection.

    ``on_measure`` is called when the measured window opens (to attach a profiler); the CPU time
    that ``server_pids`` and this process use in the window is recorded; an answer that takes
    longer than ``timeout`` counts as an error.
    """
    operations = [workload.prepare(client) for client in range(clients)]
    results = [ClientResult() for _ in range(clients)]
    finished = [0.0] * clients
    start = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def client_loop(index: int) -> None:
        connection = connect(port, timeout)
        op, result = operations[index], results[index]
        start.wait()
        for record, end in ((False, window["warmup_end"]), (True, window["end"])):
            for _ in range(MAX_OPS_PER_CLIENT):
                started = time.perf_counter()
                if started >= end:
                    break
                try:
                    op(connection, result, record)
                except (OSError, http.client.HTTPException, HttpError, ValueError) as exc:
                    if record:
                        result.errors += 1
                        result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                    connection.close()
                    continue
                if record:
                    result.ops += 1
                    result.latencies.append(time.perf_counter() - started)
        finished[index] = time.perf_counter()
        connection.close()

    threads = [threading.Thread(target=client_loop, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    window["warmup_end"] = time.perf_counter() + warmup
    window["end"] = window["warmup_end"] + duration
    start.wait()
    time.sleep(max(0.0, window["warmup_end"] - time.perf_counter()))
    server_cpu, client_cpu = cpu_seconds(list(server_pids)), time.process_time()
    if on_measure is not None:
        on_measure()
    for thread in threads:
        thread.join(timeout=warmup + duration + timeout + 5)
    server_cpu = cpu_seconds(list(server_pids)) - server_cpu
    client_cpu = time.process_time() - client_cpu
    # Operations started before the end finish after it: the window closes at the last answer.
    seconds = max(max(finished), window["end"]) - window["warmup_end"]
    merged_steps: dict[str, list[float]] = {}
    for result in results:
        for name, values in result.step_latencies.items():
            merged_steps.setdefault(name, []).extend(values)
    first_error = next((result.first_error for result in results if result.first_error), "")
    return Measurement(workload.name, clients, seconds, sum(r.ops for r in results),
                       sum(len(v) for v in merged_steps.values()), sum(r.errors for r in results),
                       first_error, [x for r in results for x in r.latencies], merged_steps,
                       workload.sub_steps, server_cpu=server_cpu, client_cpu=client_cpu)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list, in milliseconds."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1] * 1000


def merged(slices: list[Measurement]) -> Measurement:
    """One measurement from several slices of the same workload (a new object: slices stay as they are)."""
    first = slices[0]
    total = Measurement(first.name, first.clients, 0.0, 0, 0, 0, "", [], {}, first.sub_steps)
    for piece in slices:
        total.add(piece)
    return total
