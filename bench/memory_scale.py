"""Flat memory and start-up at scale (issue 18, part 4): two data sets served side by side.

Fills two data dirs with ``storage_scale.py``'s generator (by default 100 and 100,000
repositories; the measured namespace ``alice`` holds 50 repositories in both) and pull/push
counts for every repository (``db/activity/``: each pushed once, most pulled), starts a server on
each as ``make run`` does (``python -m index serve``: 2 workers, 4 threads), one after the other
so their start-ups do not compete, then measures both servers *interleaved*: every round sends the
same request to one server, then to the other (alternating which goes first), so that both see
the same disk and load. Printed per data set:

* start-up: ``Store.open()`` (the checks of every data file, what grows with the data) and
  ``create_app()`` in this process, and the time from launching ``serve`` to the first
  ``/v1/_ping`` answer;
* each worker's RSS and PSS right after start-up, after the first search in every worker (the
  first builds the search index and saves its snapshot, the other loads that), after half the
  rounds, at the end, and after a restart (both load the snapshot); searches go over eight
  keep-alive connections so that both workers answer some;
* p50/p95 of a search, of an announce that creates a repository, and of a merge of one new
  image into an existing one, with the 100,000 : 100 ratio of the p50s.

    .venv/bin/python bench/memory_scale.py [--sizes 100,100000] [--samples 200]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import free_port, stop_process  # noqa: E402
from storage_scale import (  # noqa: E402
    MEASURED,
    SEARCH_TERMS,
    Client,
    basic,
    fill,
    image_id,
    start_server,
    worker_memory,
)

from index import create_app  # noqa: E402

try:
    from index.activity import SHARDS, shard_of  # noqa: E402
except ImportError:  # measuring the code of before the shards (bench/README.md: before/after)
    SHARDS, shard_of = 1, None  # type: ignore[assignment]
from index.store import Store  # noqa: E402
from index.store.files import STAMP_KEY  # noqa: E402

CONNECTIONS = 8  # keep-alive connections per server: enough that both workers get some


class Served:
    """One data set and the server on it."""

    def __init__(self, size: int, workdir: Path) -> None:
        self.size = size
        self.data_dir = workdir / f"data-{size}"
        started = time.perf_counter()
        self.namespaces, self.json_bytes = fill(self.data_dir, size, 0)
        self.activity_bytes = fill_activity(self.data_dir)
        self.fill_seconds = time.perf_counter() - started
        self.process = None
        self.results: dict[str, list[float]] = {"search": [], "announce (new repository)": [],
                                                "merge (one new image)": []}
        self.memory: dict[str, list[tuple[float, float]]] = {}
        self.first_searches: list[float] = []
        self.restart_searches: list[float] = []

    def start(self) -> None:
        started = time.perf_counter()
        Store(self.data_dir).open()  # the part of a start that grows with the data
        self.open_seconds = time.perf_counter() - started
        started = time.perf_counter()
        create_app({"DATA_DIR": self.data_dir, "SECRET_KEY": "bench"})
        self.create_app_seconds = time.perf_counter() - started
        self.port = free_port()
        self.process, self.first_answer = start_server(self.data_dir, self.port)
        self.clients = [Client(self.port) for _ in range(CONNECTIONS)]
        self.note_memory("after start-up")

    def note_memory(self, moment: str) -> None:
        assert self.process is not None
        self.memory[moment] = worker_memory(self.process.pid)

    def timed(self, name: str, method: str, path: str, body=None, headers=None, ok=(200,), client=0) -> float:
        try:
            status, seconds = self.clients[client].call(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            # A keep-alive connection the server closed while it sat idle (the other server was
            # starting): one new connection, and the sample is taken again.
            self.clients[client] = Client(self.port)
            status, seconds = self.clients[client].call(method, path, body, headers)
        if status not in ok:
            raise SystemExit(f"{self.size} repositories: {method} {path} answered {status}")
        if name:
            self.results[name].append(seconds)
        return seconds

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)


def fill_activity(data_dir: Path) -> int:
    """Pull/push counts for every repository, as if each was pushed once and most were pulled
    (a repository exists because it was pushed), in the shards ``index.activity`` writes;
    returns their bytes."""
    table = {}
    for number, path in enumerate(sorted((data_dir / "db" / "namespaces").glob("*.json"))):
        for name in json.loads(path.read_bytes())["repositories"]:
            minute = number * 7 % 50_000
            pushed = f"2026-0{1 + minute // 10_000}-1{minute % 10}T{minute % 24:02d}:{minute % 60:02d}:00+00:00"
            entry = {"pulls": number % 40, "pushes": 1, "last_push_by": path.stem, "last_push": pushed}
            if number % 5:
                entry["last_pull"] = f"2026-06-1{minute % 10}T{minute % 24:02d}:{number % 60:02d}:00+00:00"
            table[f"{path.stem}/{name}"] = entry
    if shard_of is None:  # the code of before the shards: one file
        target = data_dir / "db" / "activity.json"
        target.write_text(json.dumps({STAMP_KEY: secrets.token_hex(8), "repositories": table}, separators=(",", ":")))
        return target.stat().st_size
    folder = data_dir / "db" / "activity"
    folder.mkdir()
    written = 0
    for shard in (f"{n:02x}" for n in range(SHARDS)):
        part = {repository: entry for repository, entry in table.items() if shard_of(repository) == shard}
        target = folder / f"{shard}.json"
        target.write_text(json.dumps({STAMP_KEY: secrets.token_hex(8), "repositories": part}, separators=(",", ":")))
        written += target.stat().st_size
    return written


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,100000", help="two sizes, small first")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the data dirs")
    args = parser.parse_args()
    small, large = (int(part) for part in args.sizes.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="memory-bench-", dir=args.workdir))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}; {args.samples} samples per operation "
          f"and size, the two servers interleaved")
    served = [Served(small, workdir), Served(large, workdir)]
    os.sync()
    try:
        for one in served:
            one.start()
        auth = {**basic(MEASURED), "X-Docker-Token": "true"}
        for one in served:  # the first search in each connection: builds the index of its worker
            for client in range(CONNECTIONS):
                one.first_searches.append(one.timed("", "GET", "/v1/search?q=nothing-yet", client=client))
                one.timed("", "GET", f"/v1/repositories/{MEASURED}/app0/images", headers=auth, client=client)
            one.note_memory("after the first searches")
        for n in range(args.samples):
            order = served if n % 2 == 0 else served[::-1]
            for one in order:
                one.timed("announce (new repository)", "PUT", f"/v1/repositories/{MEASURED}/new{n}/",
                          [{"id": image_id(7, n)}], auth)
            for one in order:
                one.timed("merge (one new image)", "PUT", f"/v1/repositories/{MEASURED}/app{n % 10}/images",
                          [{"id": image_id(8, n)}], auth, ok=(204,))
            for one in order:
                one.timed("search", "GET", f"/v1/search?q={SEARCH_TERMS[n % len(SEARCH_TERMS)]}",
                          client=n % CONNECTIONS)
            if n + 1 == args.samples // 2:  # what grows between the two halves (bench/README.md)
                for one in served:
                    one.note_memory("after half the rounds")
        for one in served:
            one.note_memory("at the end")
        for one in served:  # a restart: the workers load the search index's snapshot
            one.stop()
            one.start()
            one.restart_searches = [one.timed("", "GET", "/v1/search?q=nothing-yet", client=client)
                                    for client in range(CONNECTIONS)]
            one.note_memory("after a restart and a search")
    except (OSError, http.client.HTTPException) as exc:
        raise SystemExit(f"a request failed: {exc}") from None
    finally:
        for one in served:
            one.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(served)


def report(served: list[Served]) -> None:
    small, large = served
    width = 34
    print()
    print(f"{'':<{width}} {small.size:>16,} {large.size:>16,}   ratio")
    print(f"{'namespaces, MB of JSON':<{width}} {small.namespaces:>9,} {small.json_bytes / 1e6:>6.1f}"
          f" {large.namespaces:>9,} {large.json_bytes / 1e6:>6.1f}")
    print(f"{'pull/push counts, MB of JSON':<{width}} {small.activity_bytes / 1e6:>16.1f}"
          f" {large.activity_bytes / 1e6:>16.1f}")
    print(f"{'start: Store.open() ms':<{width}} {small.open_seconds * 1000:>16.0f}"
          f" {large.open_seconds * 1000:>16.0f}   (checks every data file)")
    print(f"{'start: create_app() ms':<{width}} {small.create_app_seconds * 1000:>16.0f}"
          f" {large.create_app_seconds * 1000:>16.0f}")
    print(f"{'start: serve -> first answer ms':<{width}} {small.first_answer * 1000:>16.0f}"
          f" {large.first_answer * 1000:>16.0f}")
    for label, times in (("first searches, slowest two ms", "first_searches"),
                         ("after a restart, slowest two ms", "restart_searches")):
        cells = [" / ".join(f"{value * 1000:.0f}" for value in sorted(getattr(one, times))[-2:]) for one in served]
        print(f"{label:<{width}} {cells[0]:>16} {cells[1]:>16}")
    for name in small.results:
        for label, fraction in (("p50", 0.5), ("p95", 0.95)):
            a = percentile(small.results[name], fraction) * 1000
            b = percentile(large.results[name], fraction) * 1000
            ratio = f"{b / a:7.2f}" if label == "p50" else ""
            print(f"{f'{name} {label} ms':<{width}} {a:>16.2f} {b:>16.2f} {ratio}")
    for moment in small.memory:
        for worker in range(max(len(small.memory[moment]), len(large.memory[moment]))):
            cells = []
            for one in served:
                found = one.memory[moment]
                cells.append(f"{found[worker][0]:>7.1f} / {found[worker][1]:>6.1f}" if worker < len(found) else "")
            print(f"{f'worker {worker + 1} RSS / PSS MiB, {moment}':<{width}} {cells[0]:>16} {cells[1]:>16}")
    print(f"# load average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
