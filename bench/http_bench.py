"""HTTP workloads of the index, measured side by side against the ``/v1/_ping`` ceiling.

    make bench                                   # or: .venv/bin/python bench/http_bench.py
    .venv/bin/python bench/http_bench.py --duration 5 --large 0 --only "login,search 1000 repos"

The server is started exactly as ``make run`` starts it (``make -C <repo> run HOST=127.0.0.1
PORT=<free port>``: granian, the Makefile's workers/threads) with a temporary
``INDEX_DATA_DIR``, once on a data dir with 1,000 repositories and once on one with 100,000.
The data is written beforehand through the ``Store`` API (or, for the large set, its files are
written whole and checked through it), never through HTTP.

This process is the load generator: ``--clients`` threads, each with its own keep-alive
connection and pre-built request bytes (closed loop: the next request goes out when the previous
answer is read). Each workload is warmed up, then measured in ``--slices`` that alternate with
slices of ``/v1/_ping``, so each ratio compares with a ceiling measured at the same time; the
server workers' CPU time per request is reported too. Loopback only; every loop is bounded in
time and count. See bench/README.md.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from dataset import BenchUser, make_data_dir
from loadgen import Measurement, merged, percentile, run_workload
from server import Server
from workloads import Workload, prime_credentials, search_workload, small_workloads


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def measure_paired(workload: Workload, ping: Workload, server: Server, args: argparse.Namespace,
                   ping_total: list[Measurement]) -> Measurement:
    """Alternate slices of ``workload`` and of ``/v1/_ping`` so both see the same machine.

    Other programs on a shared machine come and go; a ceiling measured minutes apart would
    compare two different machines. Each workload gets its own ceiling from the ping slices
    interleaved with its own slices.
    """
    piece = args.duration / args.slices
    slices: list[Measurement] = []
    pings: list[Measurement] = []
    for index in range(args.slices):
        warmup = args.warmup if index == 0 else 0.0
        pids = server.worker_pids()
        pings.append(run_workload(ping, server.port, args.clients, 0.0 if ping_total else warmup, piece,
                                  server_pids=pids))
        ping_total.append(pings[-1])
        on_measure = None
        if args.profile and index == 0:
            prefix = args.profile / slug(workload.name)
            on_measure = functools.partial(server.profile, args.py_spy, prefix, piece)
        slices.append(run_workload(workload, server.port, args.clients, warmup, piece, on_measure, pids))
    total, pinged = merged(slices), merged(pings)
    total.ceiling = pinged.requests_per_second
    total.ceiling_cpu = pinged.server_us_per_request
    return total


def report(measurements: list[Measurement]) -> str:
    """The table: throughput and latency, then the ratios to the ping measured beside each.

    ``÷ ping`` is req/s over the ping's req/s in the interleaved slices. ``CPU ÷`` is the ping's
    server CPU per request over this workload's: what the ratio would be on a machine where the
    server had the CPUs to itself (it does not depend on what else runs meanwhile).
    """
    header = (f"{'workload':<44} {'ops/s':>6} {'req/s':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
              f"{'err':>3} {'ping/s':>6} {'÷ ping':>6} {'srv µs/req':>10} {'CPU ÷':>6} {'gen µs/req':>10}")
    lines = [header, "-" * len(header)]
    for m in measurements:
        values = sorted(m.latencies)
        ratio = f"{m.requests_per_second / m.ceiling:.2f}" if m.ceiling else "-"
        cpu_ratio = f"{m.ceiling_cpu / m.server_us_per_request:.2f}" if m.ceiling_cpu and m.server_cpu else "-"
        lines.append(f"{m.name:<44} {m.ops_per_second:>6.0f} {m.requests_per_second:>6.0f} "
                     f"{percentile(values, .50):>7.2f} {percentile(values, .95):>7.2f} "
                     f"{percentile(values, .99):>7.2f} {m.errors:>3} {m.ceiling:>6.0f} {ratio:>6} "
                     f"{m.server_us_per_request:>10.0f} {cpu_ratio:>6} {m.client_us_per_request:>10.0f}")
        if m.sub_steps:
            for name, step_values in m.step_latencies.items():
                ordered = sorted(step_values)
                lines.append(f"  {name:<42} {'':>6} {len(ordered) / m.seconds:>6.0f} "
                             f"{percentile(ordered, .50):>7.2f} {percentile(ordered, .95):>7.2f} "
                             f"{percentile(ordered, .99):>7.2f}")
        if m.first_error:
            lines.append(f"  first error: {m.first_error[:200]}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds per workload, and as many of ping beside it (default 10)")
    parser.add_argument("--slices", type=int, default=4,
                        help="alternations of workload and ping within --duration (default 4)")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="unmeasured seconds before each workload's first slice (default 4)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--small", type=int, default=1_000, help="repositories of the small data set")
    parser.add_argument("--large", type=int, default=100_000, help="repositories of the large data set (0: skip)")
    parser.add_argument("--only", default="", help="comma-separated workload names to run, e.g. "
                        "'login,search 1000 repos' (ping runs beside each)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--data-parent", type=Path, default=None,
                        help="where the server's data dirs go (default: the system temp dir); "
                             "/dev/shm shows what the durable writes' fsyncs cost")
    parser.add_argument("--profile", type=Path,
                        help="sample each worker with py-spy during each workload's first measured "
                             "slice; raw stacks go to this folder (see bench/profile_summary.py)")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy program (default: py-spy on PATH)")
    args = parser.parse_args(argv)
    if not 1 <= args.slices <= 100:
        parser.error("--slices must be between 1 and 100")
    if not 1 <= args.clients <= 64:
        parser.error("--clients must be between 1 and 64")
    if not (0 < args.duration <= 600 and 0 <= args.warmup <= 120):
        parser.error("--duration must be in (0, 600] and --warmup in [0, 120]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}

    def selected(name: str) -> bool:
        return not wanted or name in wanted

    print(f"machine: {machine()}")
    print(f"load: {args.clients} clients (threads of this process, one keep-alive connection each); per "
          f"workload {args.warmup:g} s warm-up, then {args.slices} x ({args.duration / args.slices:g} s ping, "
          f"{args.duration / args.slices:g} s workload); server: make run (granian)")
    users = [BenchUser(f"bench{client}", f"benchpass{client}") for client in range(args.clients)]
    measurements: list[Measurement] = []
    workdir = Path(tempfile.mkdtemp(prefix="index-bench-", dir=args.data_parent))
    try:
        datasets = [("small", args.small, f"search {args.small} repos")]
        if args.large and selected(f"search {args.large} repos"):
            datasets.append(("large", args.large, f"search {args.large} repos"))
        for label, repositories, search_name in datasets:
            data_dir, namespaces, seconds = make_data_dir(workdir, label, repositories, users)
            print(f"\n[{label}] {repositories:,} repositories in {namespaces:,} namespaces "
                  f"(+{len(users)} bench accounts), written through Store in {seconds:.0f} s", flush=True)
            server = Server(data_dir, workdir / f"server-{label}.log")
            server.start()
            try:
                prime_credentials(server.port, users)
                ping, *others = small_workloads(users, server.port)
                workloads = [w for w in (others if label == "small" else []) if selected(w.name)]
                if selected(search_name):
                    workloads.append(search_workload(search_name))
                ping_slices: list[Measurement] = []
                for workload in workloads:
                    measurement = measure_paired(workload, ping, server, args, ping_slices)
                    measurements.append(measurement)
                    print(f"  {measurement.name}: {measurement.requests_per_second:,.0f} req/s, "
                          f"ping beside it {measurement.ceiling:,.0f} req/s, {measurement.errors} errors",
                          flush=True)
                if ping_slices:
                    overall = merged(ping_slices)
                    overall.name = f"ping (all slices, {label} data set)"
                    overall.ceiling = overall.requests_per_second
                    overall.ceiling_cpu = overall.server_us_per_request
                    measurements.append(overall)
                print(f"  server: {server.workers()} workers (log {server.log_path.name})")
            finally:
                server.stop()
        print()
        print(report(measurements))
        if args.json:
            args.json.write_text(json.dumps([
                {"name": m.name, "ops_per_second": m.ops_per_second, "requests_per_second": m.requests_per_second,
                 "p50_ms": percentile(sorted(m.latencies), .5), "p95_ms": percentile(sorted(m.latencies), .95),
                 "p99_ms": percentile(sorted(m.latencies), .99), "errors": m.errors,
                 "ping_requests_per_second": m.ceiling,
                 "server_cpu_us_per_request": m.server_us_per_request,
                 "ping_server_cpu_us_per_request": m.ceiling_cpu,
                 "load_generator_cpu_us_per_request": m.client_us_per_request,
                 "ratio_to_ping": m.requests_per_second / m.ceiling if m.ceiling else None}
                for m in measurements], indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(m.errors for m in measurements) else 0


if __name__ == "__main__":
    sys.exit(main())
