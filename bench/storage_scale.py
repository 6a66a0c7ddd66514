"""Does the cost of a request stay flat as the index grows? (issue 3's benchmark)

For each size (repositories in the whole index) this script fills a fresh data dir, starts the
server as ``make run`` does (``python -m index serve``: 2 workers, 4 threads, 127.0.0.1 on a free
port), and prints p50/p95 latency over HTTP of: creating a repository, merging an image into an
existing one, ``GET .../images``, a login check with remembered credentials and one that pays
bcrypt, a search; plus the start time and each worker's memory (RSS, and PSS: pages shared
between the processes counted in part) after the measurements.

Filling: 100,000 repositories through HTTP would take hours, so the shards are written directly in
the store's format (what ``Store`` writes: ``{"_write": stamp, "repositories": {...}}``), followed by
one ``sync``. Namespaces have realistic sizes (1 to 50 repositories, about 12 on average) and every
repository has 3 images with checksums. The namespace measured, ``alice``, holds 50 repositories at
every size, so a flat cost shows as equal figures. Passwords are hashed with 4 bcrypt rounds
(``INDEX_BCRYPT_ROUNDS=4``) so the filling and the uncached login stay quick; the uncached login
figure is therefore mostly request handling, not bcrypt (12 rounds cost ~250 ms more on its own).

    .venv/bin/python bench/storage_scale.py [--sizes 100,10000,100000] [--samples 200]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server import free_port, stop_process  # noqa: E402

from index import create_app  # noqa: E402
from index.ops.v1client import V1Client  # noqa: E402
from index.passwords import hash_password  # noqa: E402
from index.store.files import STAMP_KEY  # noqa: E402

NAMESPACE_SIZES = (1, 2, 3, 5, 8, 10, 20, 50, 5, 3, 2, 1, 12, 30, 4, 40)  # cycled; mean ~12
MEASURED = "alice"
MEASURED_REPOS = 50
PASSWORD = "benchpass"


def image_id(*parts: int) -> str:
    return "".join(f"{part:08x}" for part in parts).rjust(64, "0")[-64:]


def record(namespace: str, name: str, seed: int) -> dict:
    return {"namespace": namespace, "name": name, "description": f"{name} built for the benchmark",
            "owner": namespace, "state": "active", "created": "2026-01-01T00:00:00+00:00",
            "updated": "2026-01-01T00:00:00+00:00",
            "images": {image_id(seed, k): "sha256:" + image_id(k, seed) for k in range(3)}}


def write_shard(path: Path, table: str, documents: dict) -> None:
    path.write_text(json.dumps({STAMP_KEY: secrets.token_hex(8), table: documents}, separators=(",", ":")))


def fill(data_dir: Path, repositories: int, login_users: int) -> tuple[int, int]:
    """Write users.json and one file per namespace; returns (namespaces, bytes written).

    ``login_users`` extra accounts without repositories are each used once by the uncached login.
    """
    ns_dir = data_dir / "db" / "namespaces"
    ns_dir.mkdir(parents=True)
    password_hash = hash_password(PASSWORD, 4)
    users = {}
    written = 0

    def add(namespace: str, count: int, seed_base: int) -> None:
        nonlocal written
        users[namespace] = {"username": namespace, "password_hash": password_hash,
                            "emails": [f"{namespace}@example.com"], "active": True, "admin": False,
                            "created": "2026-01-01T00:00:00+00:00"}
        repos = {f"app{n}": record(namespace, f"app{n}", seed_base + n) for n in range(count)}
        write_shard(ns_dir / f"{namespace}.json", "repositories", repos)
        written += (ns_dir / f"{namespace}.json").stat().st_size

    add(MEASURED, min(MEASURED_REPOS, repositories), 0)
    left, index = repositories - min(MEASURED_REPOS, repositories), 0
    while left > 0:
        count = min(left, NAMESPACE_SIZES[index % len(NAMESPACE_SIZES)])
        add(f"user{index:06d}", count, 1_000_000 + index * 100)
        left -= count
        index += 1
    namespaces = len(users)
    for n in range(login_users):
        users[f"login{n:06d}"] = {**users[MEASURED], "username": f"login{n:06d}",
                                  "emails": [f"login{n:06d}@example.com"]}
    write_shard(data_dir / "db" / "users.json", "users", users)
    written += (data_dir / "db" / "users.json").stat().st_size
    os.sync()
    return namespaces, written


class Client:
    """The shared v1 client on one keep-alive connection; returns (status, seconds)."""

    def __init__(self, port: int) -> None:
        self.client = V1Client(f"127.0.0.1:{port}", timeout=60, keep_alive=True)

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, float]:
        payload = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        status = self.client.request(method, path, payload,
                                     {"Content-Type": "application/json", **(headers or {})}).status
        return status, time.perf_counter() - started


SEARCH_TERMS = ["app", "web", "alice", "zzz-nothing", "db"]


def basic(user: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4",
           "INDEX_SECRET_KEY": "bench-secret-key-0123456789abcdefgh", "INDEX_HOST": "127.0.0.1",
           "INDEX_PORT": str(port),
           "INDEX_WORKERS": "2", "INDEX_THREADS": "4"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "index", "serve"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = started + 600
    while time.perf_counter() < deadline:
        try:
            if Client(port).call("GET", "/v1/_ping")[0] == 200:
                return process, time.perf_counter() - started
        except (OSError, http.client.HTTPException):
            time.sleep(0.02)
    process.kill()
    raise SystemExit("the server did not answer within 600 s")


def worker_memory(pid: int) -> list[tuple[float, float]]:
    """(RSS MiB, PSS MiB) of each worker: the children of the server's main process."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        values = {}
        for line in Path(f"/proc/{child}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name] = int(rest.split()[0]) / 1024
        found.append((values.get("Rss", 0.0), values.get("Pss", 0.0)))
    return found


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"{p50 * 1000:8.2f} {p95 * 1000:8.2f}"


def measure(port: int, samples: int) -> dict[str, list[float]]:
    client = Client(port)
    auth = {**basic(MEASURED), "X-Docker-Token": "true"}
    results: dict[str, list[float]] = {name: [] for name in
                                       ("create repository", "merge images", "GET images",
                                        "login (remembered)", "login (bcrypt)", "search")}

    def timed(name: str, method: str, path: str, body=None, headers=None, ok=(200,)) -> None:
        status, seconds = client.call(method, path, body, headers)
        if status not in ok:
            raise SystemExit(f"{name}: {method} {path} answered {status}")
        results[name].append(seconds)

    for _ in range(20):  # warm up both workers (connections, credential cache)
        client.call("GET", f"/v1/repositories/{MEASURED}/app0/images", headers=auth)
    for n in range(samples):
        timed("create repository", "PUT", f"/v1/repositories/{MEASURED}/new{n}/",
              [{"id": image_id(7, n)}], auth)
        timed("merge images", "PUT", f"/v1/repositories/{MEASURED}/app{n % 10}/images",
              [{"id": image_id(8, n)}], auth, ok=(204,))
        timed("GET images", "GET", f"/v1/repositories/{MEASURED}/app{n % 10}/images", headers=auth)
        timed("login (remembered)", "GET", "/v1/users/", headers=basic(MEASURED))
        # A user no worker has seen yet: the credential cache misses, bcrypt runs (4 rounds here).
        timed("login (bcrypt)", "GET", "/v1/users/", headers=basic(f"login{n:06d}"))
        timed("search", "GET", f"/v1/search?q={SEARCH_TERMS[n % len(SEARCH_TERMS)]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the data dirs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.workdir))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, data in {workdir}; samples per operation: {args.samples}; latencies in ms")
    try:
        for size in (int(part) for part in args.sizes.split(",")):
            data_dir = workdir / f"data-{size}"
            fill_started = time.perf_counter()
            namespaces, size_bytes = fill(data_dir, size, args.samples)
            fill_seconds = time.perf_counter() - fill_started
            started = time.perf_counter()
            create_app({"DATA_DIR": data_dir, "SECRET_KEY": "bench"})
            open_seconds = time.perf_counter() - started
            port = free_port()
            process, first_answer = start_server(data_dir, port)
            try:
                results = measure(port, args.samples)
                memory = worker_memory(process.pid)
            finally:
                stop_process(process, timeout=30)
            print(f"\n## {size:,} repositories in {namespaces:,} namespaces "
                  f"({size_bytes / 1e6:.1f} MB of JSON, filled in {fill_seconds:.1f} s)")
            print(f"{'operation':<22} {'p50':>8} {'p95':>8}")
            for name, samples in results.items():
                print(f"{name:<22} {percentiles(samples)}")
            print(f"{'start: create_app()':<22} {open_seconds * 1000:8.0f}   (one worker: parse every file)")
            print(f"{'start: first answer':<22} {first_answer * 1000:8.0f}   (serve launched -> /v1/_ping 200)")
            for number, (rss, pss) in enumerate(memory, 1):
                print(f"worker {number}: RSS {rss:6.1f} MiB, PSS {pss:6.1f} MiB")
            sys.stdout.flush()
            shutil.rmtree(data_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
