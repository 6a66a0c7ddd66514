"""HTTP workloads of the index, measured side by side against the ``/v1/_ping`` ceiling.

    make bench                                   # or: .venv/bin/python bench/http_bench.py
    .venv/bin/python bench/http_bench.py --duration 5 --large 0 --only "login,search 1000 repos"

The server is started exactly as ``make run`` starts it (``make -C <repo> run HOST=127.0.0.1
PORT=<free port>``: granian, the Makefile's workers/threads, the app's request log) with a temporary
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
import base64
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.passwords import hash_password  # noqa: E402
from index.store import Store  # noqa: E402

HOST = "127.0.0.1"
BCRYPT_ROUNDS = 12            # the production default (INDEX_BCRYPT_ROUNDS)
BULK_ABOVE = 20_000            # larger data sets are written namespace file by namespace file
MAX_OPS_PER_CLIENT = 5_000_000  # a bound on every measuring loop besides its duration
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 40.0
RESPONSE_TIMEOUT_SECONDS = 30.0

# Search terms a person would type: common words, rarer ones, a namespace, one that matches nothing.
SEARCH_TERMS = ["nginx", "redis", "python", "web", "api", "postgres", "alpine", "node",
                "minimal", "worker", "team3", "ubuntu", "grafana", "proxy", "zzz-nothing"]

WORDS = ("nginx redis python web api postgres alpine node golang java ruby php mysql mongo "
         "kafka rabbit elastic grafana prometheus proxy cache queue worker cron backup builder "
         "runner agent gateway auth ldap mail smtp dns vpn ssh git jenkins gitlab registry "
         "ubuntu debian centos fedora busybox static site blog shop store admin dashboard "
         "metrics logs tracing search index ml notebook spark hadoop flink airflow etl "
         "sensor iot home media plex music video image thumb resize pdf docs wiki chat bot "
         "game minecraft server client sdk cli tools base dev test staging prod demo").split()
ADJECTIVES = "minimal small fast secure tiny official custom patched hardened simple".split()
KINDS = "image container build service stack base setup".split()
OWNERS = "user team acme ops dev lab corp studio data cloud".split()


# ---------------------------------------------------------------------------------------------
# Data, written through the Store API
# ---------------------------------------------------------------------------------------------
@dataclass
class BenchUser:
    username: str
    password: str

    @property
    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def image_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def namespace_sizes(total: int, rng: random.Random) -> list[int]:
    """Repositories per namespace, heavy-tailed like a public index: most own a few, some many."""
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(remaining, 1500, max(1, int(rng.paretovariate(1.15))))
        sizes.append(size)
        remaining -= size
    return sizes


def repo_name(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.4:
        return rng.choice(WORDS)
    if shape < 0.8:
        return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
    return f"{rng.choice(WORDS)}{rng.randint(1, 99)}"


def description(rng: random.Random, name: str) -> str:
    if rng.random() < 0.3:
        return ""  # many repositories have none
    return (f"{rng.choice(ADJECTIVES).capitalize()} {name.split('-')[0]} "
            f"{rng.choice(KINDS)} for {rng.choice(WORDS)} and {rng.choice(WORDS)}")


def generate(repositories: int, rng: random.Random) -> Iterator[tuple[str, list[tuple[str, list[dict], str]]]]:
    """(namespace, [(name, images, description)]) with heavy-tailed namespace sizes; about 1% of
    the repositories go to ``library``."""
    library = repositories // 100
    sizes = [library] if library else []
    sizes += namespace_sizes(repositories - library, rng)
    for index, size in enumerate(sizes):
        namespace = "library" if index == 0 and library else f"{rng.choice(OWNERS)}{index}"
        taken: dict[str, tuple[str, list[dict], str]] = {}
        while len(taken) < size:
            name = repo_name(rng)
            if name in taken:
                name = f"{name}-{len(taken)}"
            images = [{"id": image_id(rng)} for _ in range(rng.randint(0, 2))]
            images.append({"id": image_id(rng), "Tag": "latest"})
            taken[name] = (name, images, description(rng, name))
        yield namespace, list(taken.values())


def populate(data_dir: Path, repositories: int, users: list[BenchUser], seed: int,
             bulk: bool) -> int:
    """Create the bench accounts (each with one repository ``app``) and ``repositories`` more.

    Everything goes through the public Store API, except with ``bulk``: then each namespace file
    is written whole in the store's current on-disk form (one announce per repository costs a
    read-modify-write of its namespace file: minutes at 100,000), and read back through the Store
    API to check that the form still matches. Returns the number of namespaces.
    """
    rng = random.Random(seed)
    store = Store(data_dir)
    store.open()
    for user in users:
        store.create_user(user.username, hash_password(user.password, BCRYPT_ROUNDS),
                          f"{user.username}@example.com", active=True)
        store.announce_repository(user.username, "app",
                                  [{"id": image_id(rng)}, {"id": image_id(rng), "Tag": "latest"}],
                                  owner=user.username)
    count = 0
    for namespace, repos in generate(repositories, rng):
        count += 1
        if bulk and namespace != "library":
            write_namespace_file(store, namespace, repos)
            continue
        for name, images, text in repos:
            store.announce_repository(namespace, name, images, owner=namespace)
            if text:
                store.set_description(namespace, name, text)
    if bulk:
        check_bulk_form(data_dir, store)
    return count


def write_namespace_file(store: Store, namespace: str, repos: list[tuple[str, list[dict], str]]) -> None:
    """One namespace's repositories as announce_repository + set_description would leave them."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    table = {name: {"namespace": namespace, "name": name, "description": text, "owner": namespace,
                    "state": "active", "created": stamp,
                    "images": {image["id"]: image.get("checksum", "") for image in images},
                    "updated": stamp}
             for name, images, text in repos}
    path = store.db_dir / "namespaces" / f"{namespace}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"repositories": table}, separators=(",", ":")))


def check_bulk_form(data_dir: Path, store: Store) -> None:
    """Fail loudly if bulk-written records differ from ones the Store API writes."""
    reference_dir = Path(tempfile.mkdtemp(prefix="index-bench-form-", dir=data_dir.parent))
    try:
        reference = Store(reference_dir)
        reference.open()
        images = [{"id": "a" * 64}, {"id": "b" * 64, "Tag": "latest"}]
        reference.announce_repository("formcheck", "repo", images, owner="formcheck")
        reference.set_description("formcheck", "repo", "text")
        expected = reference.get_repository("formcheck", "repo")
        write_namespace_file(store, "formcheck", [("repo", images, "text")])
        written = Store(data_dir)
        written.open()  # parses every file, as a starting server does
        actual = written.get_repository("formcheck", "repo")
        ignore = {"created", "updated"}
        if actual is None or {k: v for k, v in actual.items() if k not in ignore} != \
                {k: v for k, v in expected.items() if k not in ignore}:
            raise RuntimeError("the store's on-disk form changed: update write_namespace_file "
                               f"(expected {expected}, read back {actual})")
        for leftover in (store.db_dir / "namespaces").glob("formcheck.json*"):
            leftover.unlink()
    finally:
        shutil.rmtree(reference_dir, ignore_errors=True)


def make_data_dir(parent: Path, label: str, repositories: int, users: list[BenchUser]) -> tuple[Path, int, float]:
    """Fill a data dir, on tmpfs first when there is one (fsync there is free), then copy it."""
    started = time.perf_counter()
    scratch_parent = Path("/dev/shm") if Path("/dev/shm").is_dir() else parent
    scratch = Path(tempfile.mkdtemp(prefix=f"index-bench-{label}-", dir=scratch_parent))
    try:
        namespaces = populate(scratch, repositories, users, seed=repositories,
                              bulk=repositories > BULK_ABOVE)
        target = parent / label
        shutil.copytree(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, namespaces, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The server, started as `make run` starts it
# ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """``make run`` on a free loopback port in its own process group (so it is stopped whole)."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.profilers: list[subprocess.Popen] = []

    def start(self) -> None:
        env = {**os.environ, "INDEX_DATA_DIR": str(self.data_dir)}
        for name in ("INDEX_SECRET_KEY", "INDEX_ADMIN_USERNAME", "INDEX_ADMIN_PASSWORD",
                     "INDEX_BCRYPT_ROUNDS", "INDEX_CREDENTIAL_CACHE_SECONDS", "INDEX_TOKEN_TTL",
                     "INDEX_REGISTRY_ENDPOINTS", "INDEX_REGISTRATION"):
            env.pop(name, None)  # production defaults, whatever the caller's shell holds
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(ROOT), "run", f"HOST={HOST}", f"PORT={self.port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early; see {self.log_path}:\n{self.log_tail()}")
            try:
                connection = Connection(self.port, timeout=5.0)
                status, _, _ = connection.exchange(build_request("GET", "/v1/_ping"))
                connection.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /v1/_ping within {START_TIMEOUT_SECONDS:.0f} s")

    def worker_pids(self) -> list[int]:
        """The server's workers: the children of the main process, the child of the make we started."""
        def children(pid: int) -> list[int]:
            found: list[int] = []
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                found += [int(child) for child in task.read_text().split()]
            return found
        assert self.process is not None
        masters = children(self.process.pid)
        return [worker for master in masters for worker in children(master)]

    def profile(self, py_spy: str, prefix: Path, seconds: float) -> None:
        """Sample every worker with py-spy for ``seconds`` (in the background), raw stacks to files."""
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for pid in self.worker_pids():
            self.profilers.append(subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                              "--rate", "200", "--nonblocking", "--format", "raw",
                              "--output", f"{prefix}-worker{pid}.txt"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def workers(self) -> int:
        return self.log_path.read_text(errors="replace").count("Spawning worker-")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for profiler in self.profilers:
            try:
                profiler.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait(timeout=10)
        if self.process is None or self.process.poll() is not None:
            return
        group = self.process.pid  # start_new_session: the group id is the pid we started
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        # make exits before gunicorn has finished its graceful stop: wait for the group to end.
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client: pre-built request bytes, cheap response parsing
# ---------------------------------------------------------------------------------------------
class HttpError(Exception):
    pass


def build_request(method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "User-Agent: index-bench"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class Connection:
    def __init__(self, port: int, timeout: float = RESPONSE_TIMEOUT_SECONDS) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        self.buffer += chunk

    def exchange(self, raw_request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request, read one whole response: (status, lower-cased headers, body)."""
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        try:
            sock.sendall(raw_request)
            while b"\r\n\r\n" not in self.buffer:
                self._fill(sock)
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = self._read_chunked(sock)
            else:
                length = int(headers.get("content-length", "0"))
                while len(self.buffer) < length:
                    self._fill(sock)
                body, self.buffer = self.buffer[:length], self.buffer[length:]
        except (OSError, HttpError, ValueError, IndexError):
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self, sock: socket.socket) -> bytes:
        body = b""
        for _ in range(1_000_000):
            while b"\r\n" not in self.buffer:
                self._fill(sock)
            size_line, self.buffer = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buffer) < size + 2:
                self._fill(sock)
            body, self.buffer = body + self.buffer[:size], self.buffer[size + 2:]
            if size == 0:
                return body
        raise HttpError("too many chunks")


# ---------------------------------------------------------------------------------------------
# Workloads: one operation = one request or one whole handshake
# ---------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    request: bytes
    expect: int


@dataclass
class ClientResult:
    ops: int = 0
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: list[float] = field(default_factory=list)
    step_latencies: dict[str, list[float]] = field(default_factory=dict)


def timed(connection: Connection, step: Step, result: ClientResult, record: bool) -> tuple[dict[str, str], bytes]:
    started = time.perf_counter()
    status, headers, body = connection.exchange(step.request)
    elapsed = time.perf_counter() - started
    result.requests += 1
    if record:
        result.step_latencies.setdefault(step.name, []).append(elapsed)
    if status != step.expect:
        raise HttpError(f"{step.name}: status {status}, expected {step.expect}: {body[:200]!r}")
    return headers, body


class Workload:
    """A named operation that each client repeats: one request, or a handshake of several."""

    name = ""
    sub_steps = False  # print per-request rows under the operation's row

    def prepare(self, client: int) -> Callable[[Connection, ClientResult, bool], None]:
        raise NotImplementedError


class Single(Workload):
    """One request, the same every time (or cycling through a fixed list)."""

    def __init__(self, name: str, make: Callable[[int], list[Step]]) -> None:
        self.name = name
        self.make = make

    def prepare(self, client: int):
        steps = self.make(client)
        position = [client % len(steps)]

        def op(connection: Connection, result: ClientResult, record: bool) -> None:
            step = steps[position[0] % len(steps)]
            position[0] += 1
            timed(connection, step, result, record)
        return op


class NewImages(Workload):
    """``PUT repo/`` announcing an image id never announced before, every time: the durable write
    of a first push (the others re-announce known images, which writes nothing). Each client
    writes its own namespace, whose file grows by one id per request over the run."""

    name = "push step: PUT repo/ (new image)"

    def __init__(self, users: list[BenchUser]) -> None:
        self.users = users
        self.serial = itertools.count()  # ids stay new across slices and repeated runs on one server

    def prepare(self, client: int):
        user = self.users[client]

        def op(connection: Connection, result: ClientResult, record: bool) -> None:
            image = {"id": f"{client:08x}{os.getpid():08x}{next(self.serial):048x}", "Tag": "latest"}
            timed(connection, push_announce(user, "fresh", [image]), result, record)
        return op


def repository_url(user: BenchUser, repo: str, suffix: str) -> str:
    return f"/v1/repositories/{user.username}/{repo}/{suffix}"


def push_announce(user: BenchUser, repo: str, images: list[dict]) -> Step:
    body = json.dumps(images).encode()
    return Step("push: PUT repo/ (Basic)", build_request(
        "PUT", repository_url(user, repo, ""),
        {"Authorization": user.basic, "X-Docker-Token": "true", "Content-Type": "application/json"}, body), 200)


def push_commit(user: BenchUser, repo: str, port: int) -> Step:
    return Step("push: PUT images [] (Basic)", build_request(
        "PUT", repository_url(user, repo, "images"),
        {"Authorization": user.basic, "X-Docker-Token": "true", "Content-Type": "application/json",
         "X-Docker-Endpoints": f"http://{HOST}:{port}/v1/"}, b"[]"), 204)


def validation(user: BenchUser, repo: str, token: str, label: str) -> Step:
    return Step(label, build_request("GET", repository_url(user, repo, "images"),
                                     {"Authorization": f"Token {token}"}), 200)


def pull_request(user: BenchUser, repo: str) -> Step:
    return Step("pull: GET images (anonymous, X-Docker-Token)", build_request(
        "GET", repository_url(user, repo, "images"), {"X-Docker-Token": "true"}), 200)


class PushHandshake(Workload):
    """PUT repo/ (Basic) -> 3 token validations (Token) -> PUT images [] (Basic), as docker 1.x + registry."""

    name = "push handshake"
    sub_steps = True

    def __init__(self, users: list[BenchUser], port: int) -> None:
        self.users, self.port = users, port

    def prepare(self, client: int):
        user = self.users[client]
        rng = random.Random(client)
        images = [{"id": image_id(rng)}, {"id": image_id(rng)}, {"id": image_id(rng), "Tag": "latest"}]
        announce = push_announce(user, "pushed", images)
        commit = push_commit(user, "pushed", self.port)

        def op(connection: Connection, result: ClientResult, record: bool) -> None:
            headers, _ = timed(connection, announce, result, record)
            token = headers.get("x-docker-token")
            if not token or "x-docker-endpoints" not in headers:
                raise HttpError("push: PUT repo/ answered without X-Docker-Token or X-Docker-Endpoints")
            check = validation(user, "pushed", token, "push: GET images (Token, registry check)")
            for _ in range(3):
                _, body = timed(connection, check, result, record)
                if len(json.loads(body)) != len(images):
                    raise HttpError("push: the token check did not return the announced images")
            timed(connection, commit, result, record)
        return op


class PullHandshake(Workload):
    """Anonymous GET images with X-Docker-Token: true -> 1 token validation, as docker 1.x + registry."""

    name = "pull handshake"
    sub_steps = True

    def __init__(self, users: list[BenchUser]) -> None:
        self.users = users

    def prepare(self, client: int):
        user = self.users[client]
        pull = pull_request(user, "app")

        def op(connection: Connection, result: ClientResult, record: bool) -> None:
            headers, _ = timed(connection, pull, result, record)
            token = headers.get("x-docker-token")
            if not token:
                raise HttpError("pull: GET images answered without X-Docker-Token")
            timed(connection, validation(user, "app", token, "pull: GET images (Token, registry check)"),
                  result, record)
        return op


def prime_credentials(port: int, users: list[BenchUser], attempts: int = 60) -> None:
    """Log every bench user in on fresh connections until several answers in a row are fast.

    Each gunicorn worker pays bcrypt once per user before its credential cache knows them; a
    fresh connection lands on either worker, so a run of fast answers means both have paid.
    """
    for user in users:
        fast_in_a_row = 0
        request = build_request("GET", "/v1/users/", {"Authorization": user.basic})
        for _ in range(attempts):
            connection = Connection(port)
            started = time.perf_counter()
            try:
                status, _, body = connection.exchange(request)
            finally:
                connection.close()
            if status != 200:
                raise RuntimeError(f"login of {user.username} failed ({status}): {body[:200]!r}")
            fast_in_a_row = fast_in_a_row + 1 if time.perf_counter() - started < 0.05 else 0
            if fast_in_a_row >= 8:
                break


def token_for(port: int, step: Step) -> str:
    connection = Connection(port)
    try:
        status, headers, body = connection.exchange(step.request)
    finally:
        connection.close()
    if status != step.expect or "x-docker-token" not in headers:
        raise RuntimeError(f"could not get a token for the bench ({status}): {body[:200]!r}")
    return headers["x-docker-token"]


def small_workloads(users: list[BenchUser], port: int) -> list[Workload]:
    def ping(client: int) -> list[Step]:
        return [Step("GET /v1/_ping", build_request("GET", "/v1/_ping"), 200)]

    def login(client: int) -> list[Step]:
        user = users[client]
        return [Step("GET /v1/users/ (Basic)",
                     build_request("GET", "/v1/users/", {"Authorization": user.basic}), 200)]

    def put_repo(client: int) -> list[Step]:
        user = users[client]
        return [push_announce(user, "announced", [{"id": f"{client:064x}", "Tag": "latest"}])]

    def put_images(client: int) -> list[Step]:
        return [push_commit(users[client], "app", port)]

    def write_check(client: int) -> list[Step]:
        user = users[client]
        token = token_for(port, push_announce(user, "checked", [{"id": f"{client + 1:064x}"}]))
        return [validation(user, "checked", token, "push: GET images (write token)")]

    def pull_only(client: int) -> list[Step]:
        return [pull_request(users[client], "app")]

    def read_check(client: int) -> list[Step]:
        user = users[client]
        token = token_for(port, pull_request(user, "app"))
        return [validation(user, "app", token, "pull: GET images (read token)")]

    return [
        Single("ping", ping),
        PushHandshake(users, port),
        PullHandshake(users),
        Single("login", login),
        Single("push step: PUT repo/", put_repo),
        NewImages(users),
        Single("push step: token check", write_check),
        Single("push step: PUT images []", put_images),
        Single("pull step: GET images", pull_only),
        Single("pull step: token check", read_check),
    ]


def search_workload(label: str) -> Workload:
    def search(client: int) -> list[Step]:
        return [Step(f"GET /v1/search?q={term}",
                     build_request("GET", f"/v1/search?q={quote_plus(term)}",
                                   {"X-Docker-Token": "true"}), 200)
                for term in SEARCH_TERMS]
    return Single(label, search)


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------
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
    server_cpu: float = 0.0   # CPU seconds the gunicorn workers used in the measured window
    client_cpu: float = 0.0   # CPU seconds this load generator used in it
    ceiling: float = 0.0      # req/s of /v1/_ping in the slices paired with this workload's
    ceiling_cpu: float = 0.0  # server CPU µs per ping request in those slices

    def add(self, other: "Measurement") -> None:
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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def run_workload(workload: Workload, port: int, clients: int, warmup: float, duration: float,
                 on_measure: Callable[[], None] | None = None, server_pids: list[int] = ()) -> Measurement:
    """Warm up, then measure: ``clients`` threads, each on its own keep-alive connection.

    ``on_measure`` is called when the measured window opens (to attach a profiler); the CPU time
    that ``server_pids`` and this process use in the window is recorded.
    """
    operations = [workload.prepare(client) for client in range(clients)]
    results = [ClientResult() for _ in range(clients)]
    finished = [0.0] * clients
    start = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def client_loop(index: int) -> None:
        connection = Connection(port)
        op, result = operations[index], results[index]
        start.wait()
        for record, end in ((False, window["warmup_end"]), (True, window["end"])):
            for _ in range(MAX_OPS_PER_CLIENT):
                started = time.perf_counter()
                if started >= end:
                    break
                try:
                    op(connection, result, record)
                except (OSError, HttpError, ValueError) as exc:
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
        thread.join(timeout=warmup + duration + RESPONSE_TIMEOUT_SECONDS + 5)
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


def merged(slices: list[Measurement]) -> Measurement:
    """One measurement from several slices of the same workload (a new object: slices stay as they are)."""
    first = slices[0]
    total = Measurement(first.name, first.clients, 0.0, 0, 0, 0, "", [], {}, first.sub_steps)
    for piece in slices:
        total.add(piece)
    return total


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def measure_paired(workload: Workload, ping: Workload, server: "Server", args: argparse.Namespace,
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
            on_measure = lambda: server.profile(args.py_spy, prefix, piece)  # noqa: E731
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
          f"{args.duration / args.slices:g} s workload); server: make run (granian); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
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
                print(f"  server: {server.workers()} granian workers started (log {server.log_path.name})")
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
