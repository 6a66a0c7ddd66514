"""Issue 18's figures in one run (what ``make bench`` prints): the trivial-Flask ceiling under each
candidate server beside the index's own requests under ``make run``, then slow clients.

    make bench                                   # or: .venv/bin/python bench/serving_bench.py
    make bench-short                             # about a minute: --short

Everything runs at once on this machine: the candidate servers (``server_ceiling.py``: gunicorn
gthread, granian WSGI, granian RSGI + the index's bridge, each serving ``trivial_app.py``) and the
index started as ``make run`` starts it on a fresh data dir (``dataset.py``). Each round measures
one slice of the trivial ping under every candidate, then one slice of each index workload (its
own ``/v1/_ping``, the push and pull handshakes, login, search, new-image pushes), so every ratio
compares figures taken within seconds of each other: ``÷ fastest`` is a workload's requests a
second over the fastest candidate's trivial pings a second over the same rounds (the issue's
target: >= 0.5 for the handshakes, login and search; >= 0.4 for the new-image pushes), ``÷ ping``
over the index's own ping. ``CPU ÷`` is the fastest candidate's server CPU per ping over the
workload's server CPU per request: the ratio on a machine where the servers had the CPUs to
themselves. Then the candidates and the index each get slow clients beside a ping (and the index
a push handshake). Loopback only; every loop is bounded in time and count.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import server_ceiling
import slow_clients
from dataset import BenchUser, make_data_dir
from http_bench import machine
from loadgen import Measurement, merged, percentile, run_workload
from procstat import load_average
from server import Server
from workloads import NewImages, Workload, prime_credentials, search_workload, small_workloads

# The targets, as a fraction of the fastest trivial-Flask ping of the same run.
TARGETS = {"push handshake": 0.5, "pull handshake": 0.5, "login": 0.5, "search": 0.5,
           "new-image pushes": 0.4}


def index_workloads(users: list[BenchUser], port: int, repositories: int) -> list[Workload]:
    by_name = {w.name: w for w in small_workloads(users, port)}
    chosen = [by_name["ping"], by_name["push handshake"], by_name["pull handshake"], by_name["login"],
              search_workload("search"), NewImages(users)]
    chosen[-1].name = "new-image pushes"
    chosen[0].name = "index ping (make run)"
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true",
                        help="a quick run while working: 1 round of 1.5 s slices, smaller slow-client counts")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --short 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per slice (default 3; --short 1.5)")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients per slice (default 8)")
    parser.add_argument("--repositories", type=int, help="repositories in the index's data set "
                        "(default 1,000; --short 200)")
    parser.add_argument("--ceiling-slow", type=int, help="half-sent and as many trickling connections "
                        "beside each candidate's ping (default 50; --short 20; 0: skip)")
    parser.add_argument("--slow-partial", type=int, help="half-sent headers held against the index "
                        "(default 500; --short 100)")
    parser.add_argument("--slow-trickling", type=int, help="trickling bodies held against the index "
                        "(default 100; --short 20)")
    parser.add_argument("--slow-seconds", type=float, help="how long (default 60; --short 8; 0: skip)")
    parser.add_argument("--before", type=Path, help="another checkout of the index (an older commit, "
                        "its Makefile's .venv a link to this one's): served as well, its workloads "
                        "interleaved with this checkout's, rows marked [before]")
    args = parser.parse_args(argv)
    defaults = (dict(rounds=1, seconds=1.5, repositories=200, ceiling_slow=20, slow_partial=100,
                     slow_trickling=20, slow_seconds=8.0) if args.short else
                dict(rounds=3, seconds=3.0, repositories=1000, ceiling_slow=50, slow_partial=500,
                     slow_trickling=100, slow_seconds=60.0))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not (1 <= args.rounds <= 10 and 0 < args.seconds <= 30 and 1 <= args.clients <= 64
            and 10 <= args.repositories <= 20_000 and 0 <= args.ceiling_slow <= 500
            and 0 <= args.slow_partial <= 2000 and 0 <= args.slow_trickling <= 1000
            and 0 <= args.slow_seconds <= 300):
        parser.error("out of range: --rounds 1..10, --seconds (0, 30], --clients 1..64, --repositories "
                     "10..20000, --ceiling-slow 0..500, --slow-partial 0..2000, --slow-trickling 0..1000, "
                     "--slow-seconds 0..300")
    return args


def workload_table(measurements: dict[str, Measurement], fastest_name: str, fastest: Measurement,
                   own_pings: dict[str, Measurement]) -> str:
    header = (f"{'index under make run':<30} {'ops/s':>6} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} "
              f"{'srv µs/req':>10} {'÷ ping':>6} {'÷ fastest':>9} {'CPU ÷':>6} {'target':>7}")
    lines = [header, "-" * len(header)]
    for name, m in measurements.items():
        latencies = sorted(m.latencies)
        ratio = m.requests_per_second / fastest.requests_per_second
        base, marker, label = name.partition(" [")
        own_ping = own_pings[marker + label]
        target = TARGETS.get(base)
        verdict = "" if target is None else f"{target:.1f} {'met' if ratio >= target else 'NOT'}"
        lines.append(f"{name:<30} {m.ops_per_second:>6.0f} {m.requests_per_second:>6.0f} "
                     f"{percentile(latencies, .5):>7.2f} {percentile(latencies, .99):>7.2f} {m.errors:>4} "
                     f"{m.server_us_per_request:>10.0f} {m.requests_per_second / own_ping.requests_per_second:>6.2f} "
                     f"{ratio:>9.2f} {fastest.server_us_per_request / m.server_us_per_request:>6.2f} "
                     f"{verdict:>7}")
        if m.sub_steps:
            for step, values in m.step_latencies.items():
                ordered = sorted(values)
                lines.append(f"  {step:<44} {len(ordered) / m.seconds:>6.0f} {percentile(ordered, .5):>7.2f} "
                             f"{percentile(ordered, .99):>7.2f}")
        if m.first_error:
            lines.append(f"  first error: {m.first_error[:200]}")
    lines.append(f"(÷ fastest: over {fastest_name}'s trivial ping in the same rounds, "
                 f"{fastest.requests_per_second:,.0f} req/s at {fastest.server_us_per_request:.0f} µs of server CPU)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    print(f"# serving_bench{' --short' if args.short else ''}, {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} "
          f"UTC, load average {load_average()}")
    print(f"# {machine()}")
    print(f"# {args.rounds} round(s): a {args.seconds:g} s slice per candidate and per workload, "
          f"{args.clients} keep-alive clients each; index data set {args.repositories:,} repositories", flush=True)
    users = [BenchUser(f"bench{client}", f"benchpass{client}") for client in range(args.clients)]
    candidates = server_ceiling.candidates(2, 4)
    ceiling: dict[str, list[Measurement]] = {}
    ceiling_slow: dict[str, tuple[Measurement, float]] = {}
    slices: dict[str, list[Measurement]] = {}
    slow_figures = None
    workdir = Path(tempfile.mkdtemp(prefix="index-serving-bench-"))
    indexes: list[tuple[str, Server]] = []
    try:
        data_dir, _, _ = make_data_dir(workdir, "small", args.repositories, users)
        indexes.append(("", Server(data_dir, workdir / "server.log")))
        if args.before:
            shutil.copytree(data_dir, workdir / "before")
            indexes.append((" [before]", Server(workdir / "before", workdir / "server-before.log",
                                                root=args.before.resolve())))
        try:
            server_ceiling.start_all(candidates)
            plans: list[tuple[str, Server, list[Workload]]] = []
            for label, index in indexes:
                index.start()
                prime_credentials(index.port, users)
                plans.append((label, index, index_workloads(users, index.port, args.repositories)))
            for round_number in range(args.rounds):
                server_ceiling.measure_round(candidates, args.clients, args.seconds, ceiling)
                for position in range(len(plans[0][2])):
                    for label, index, workloads in plans:  # before and after back to back
                        workload = workloads[position]
                        warmup = 1.0 if round_number == 0 else 0.3
                        slices.setdefault(workload.name + label, []).append(run_workload(
                            workload, index.port, args.clients, warmup, args.seconds,
                            server_pids=index.worker_pids()))
                print(f"  round {round_number + 1} done, load average {load_average()}", flush=True)
            if args.ceiling_slow:
                for candidate in candidates:
                    ceiling_slow[candidate.name] = server_ceiling.measure_beside_slow(
                        candidate, args.ceiling_slow, args.clients, args.seconds)
            if args.slow_seconds:
                print(f"  slow clients against the index for {args.slow_seconds:g} s", flush=True)
                slow_figures = slow_clients.measure(indexes[0][1], users[0], args.slow_partial,
                                                    args.slow_trickling, args.slow_seconds)
        finally:
            server_ceiling.stop_all(candidates)
            for _, index in indexes:
                index.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fastest_name, _ = server_ceiling.fastest(candidates, ceiling)
    fastest = merged(ceiling[fastest_name])
    measurements = {name: merged(parts) for name, parts in slices.items()}
    own_pings = {label: measurements[plans[0][2][0].name + label] for label, _ in indexes}
    print()
    print(server_ceiling.table(candidates, ceiling, ceiling_slow))
    if ceiling_slow:
        print(f"(with slow: {args.ceiling_slow} connections holding half-sent headers and {args.ceiling_slow} "
              f"trickling a body one byte a second, opened before the ping was measured again)")
    print()
    print(workload_table(measurements, fastest_name, fastest, own_pings))
    if slow_figures is not None:
        print()
        print(slow_clients.report(slow_figures))
    print(f"\n# done in {time.monotonic() - started:.0f} s, load average {load_average()} at the end")
    errors = sum(m.errors for m in measurements.values()) + (slow_figures.errors() if slow_figures else 0)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
