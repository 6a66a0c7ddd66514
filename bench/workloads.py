"""The workloads: what each load-generating client repeats (one request, or a whole handshake as
docker 1.x and a registry make it), on the shared v1 client with a keep-alive connection."""
from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the index package, from this checkout

from dataset import SEARCH_TERMS, BenchUser, image_id  # noqa: E402
from server import HOST  # noqa: E402

from index.ops.v1client import Reply, V1Client  # noqa: E402

RESPONSE_TIMEOUT_SECONDS = 30.0


class HttpError(Exception):
    """An answer the workload did not expect."""


def connect(port: int, timeout: float = RESPONSE_TIMEOUT_SECONDS) -> V1Client:
    """A client with one keep-alive connection to the server under test."""
    return V1Client(f"{HOST}:{port}", timeout=timeout, keep_alive=True)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def build_request(method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None) -> Request:
    return Request(method, path, {"User-Agent": "index-bench", **(headers or {})}, body)


def send(client: V1Client, request: Request) -> Reply:
    return client.request(request.method, request.path, request.body, request.headers)


@dataclass
class Step:
    name: str
    request: Request
    expect: int


@dataclass
class ClientResult:
    ops: int = 0
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: list[float] = field(default_factory=list)
    step_latencies: dict[str, list[float]] = field(default_factory=dict)


def timed(connection: V1Client, step: Step, result: ClientResult, record: bool) -> tuple[Message, bytes]:
    started = time.perf_counter()
    reply = send(connection, step.request)
    status, headers, body = reply.status, reply.headers, reply.body
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

    def prepare(self, client: int) -> Callable[[V1Client, ClientResult, bool], None]:
        raise NotImplementedError


class Single(Workload):
    """One request, the same every time (or cycling through a fixed list)."""

    def __init__(self, name: str, make: Callable[[int], list[Step]]) -> None:
        self.name = name
        self.make = make

    def prepare(self, client: int):
        steps = self.make(client)
        position = [client % len(steps)]

        def op(connection: V1Client, result: ClientResult, record: bool) -> None:
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

        def op(connection: V1Client, result: ClientResult, record: bool) -> None:
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

        def op(connection: V1Client, result: ClientResult, record: bool) -> None:
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

        def op(connection: V1Client, result: ClientResult, record: bool) -> None:
            headers, _ = timed(connection, pull, result, record)
            token = headers.get("x-docker-token")
            if not token:
                raise HttpError("pull: GET images answered without X-Docker-Token")
            timed(connection, validation(user, "app", token, "pull: GET images (Token, registry check)"),
                  result, record)
        return op


def prime_credentials(port: int, users: list[BenchUser], attempts: int = 60) -> None:
    """Log every bench user in on fresh connections until several answers in a row are fast.

    Each server worker pays bcrypt once per user before its credential cache knows them; a
    fresh connection lands on either worker, so a run of fast answers means both have paid.
    """
    for user in users:
        fast_in_a_row = 0
        request = build_request("GET", "/v1/users/", {"Authorization": user.basic})
        for _ in range(attempts):
            connection = connect(port)
            started = time.perf_counter()
            try:
                reply = send(connection, request)
            finally:
                connection.close()
            status, body = reply.status, reply.body
            if status != 200:
                raise RuntimeError(f"login of {user.username} failed ({status}): {body[:200]!r}")
            fast_in_a_row = fast_in_a_row + 1 if time.perf_counter() - started < 0.05 else 0
            if fast_in_a_row >= 8:
                break


def token_for(port: int, step: Step) -> str:
    connection = connect(port)
    try:
        reply = send(connection, step.request)
    finally:
        connection.close()
    status, headers, body = reply.status, reply.headers, reply.body
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
