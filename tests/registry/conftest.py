"""A real server process (``python -m index serve``, as ``make run`` starts it, on a free loopback
port) for the registry's end-to-end tests."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from index.ops.v1client import V1Client
from tests.processes import ROOT, clean_env, free_port, stop, wait_for_http

from . import storage

START_TIMEOUT = 30.0
ADMIN = ("admin", "adminpass")


@dataclass
class Server:
    host: str          # 127.0.0.1:<port>
    data_dir: Path
    process: subprocess.Popen
    s3: Any = None  # an S3Blobs over the server's bucket when its layers are in S3
    env: dict[str, str] | None = None  # the settings it was started with beyond the defaults

    def client(self, credentials: tuple[str, str] | None = None) -> V1Client:
        return V1Client(self.host, credentials)

    def register(self, username: str, password: str = "secret1") -> V1Client:
        client = self.client((username, password))
        body = json.dumps({"username": username, "password": password, "auth": "",
                           "email": f"{username}@example.com"}).encode()
        reply = client.request("POST", "/v1/users/", body,
                               {"Content-Type": "application/json; charset=utf-8"})
        assert reply.status == 201, (reply.status, reply.body)
        return client

    def layer_file(self, image_id: str, uploader: str | None = None) -> Any:
        """The blob file (or S3 object) of a version: ``.exists()``, ``.read_bytes()``."""
        return storage.layer_file(self.data_dir, image_id, uploader, self.s3)

    def unfinished_uploads(self) -> list[str]:
        return storage.unfinished_uploads(self.data_dir, self.s3)


@contextlib.contextmanager
def running_server(data_dir: Path, log_path: Path, workers: int = 2, extra_env: dict | None = None):
    """``python -m index serve`` (granian); always stopped (by its PID) on exit."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = clean_env({"INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4",
                     "INDEX_SECRET_KEY": "registry-test-secret-0123456789abcdef", "INDEX_ADMIN_USERNAME": ADMIN[0],
                     "INDEX_ADMIN_PASSWORD": ADMIN[1], "INDEX_HOST": "127.0.0.1", "INDEX_PORT": str(port),
                     "INDEX_WORKERS": str(workers), "INDEX_THREADS": "4",
                     # these flows describe public repositories; tests/access covers private ones
                     "INDEX_DEFAULT_VISIBILITY": "public", **(extra_env or {})})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "index", "serve"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://{host}/v1/_ping", process, log_path, START_TIMEOUT)
        yield Server(host, data_dir, process, _s3_view(extra_env), dict(extra_env or {}))
    finally:
        stop(process)


def start_stalled_upload(server: Server, client: V1Client, repository: str, layer: Any,
                         timeout: float) -> tuple[socket.socket, dict[str, str]]:
    """Announce ``layer`` in ``repository``, store its json, then open a chunked layer PUT that
    sends its first 16 KiB and nothing more. Returns the open socket (the caller closes it) and
    the push's token header."""
    announced = client.announce(repository, [layer])
    token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    assert client.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                          {**token, "Content-Type": "application/json"}).status == 200
    head = (f"PUT /v1/images/{layer.image_id}/layer HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Authorization: {token['Authorization']}\r\nContent-Type: application/octet-stream\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    first = layer.body[:16 * 1024]
    upload = socket.create_connection(("127.0.0.1", int(server.host.rsplit(":", 1)[1])), timeout=timeout)
    upload.sendall(head + f"{len(first):x}\r\n".encode() + first + b"\r\n")
    return upload, token


def _s3_view(env: dict | None) -> Any:
    """An S3Blobs over the bucket a server with these settings uses (None: layers on disk)."""
    if not env or not env.get("INDEX_LAYER_STORAGE"):
        return None
    from tests.s3.fixtures import blobs_for
    from tests.s3.swift import SwiftS3
    swift = SwiftS3(env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                    env["AWS_DEFAULT_REGION"], Path(), Path())
    return blobs_for(swift, env["INDEX_LAYER_STORAGE"])


def layer_storage_env(request, kind: str) -> dict[str, str]:
    """The settings of a server whose layers go to ``kind``: "local" (the data dir), "s3" (a
    new bucket on the session's Swift server) or "s3-redirect" (the same, with layer GETs
    answered by a 302 to a presigned URL)."""
    if kind == "local":
        return {}
    from tests.s3.fixtures import new_bucket
    swift = request.getfixturevalue("swift_s3")
    bucket = new_bucket(swift)
    redirect = {"INDEX_S3_REDIRECT": "true"} if kind == "s3-redirect" else {}
    return {**swift.environment(), "INDEX_LAYER_STORAGE": f"s3://{bucket}/layers", "INDEX_S3_PATH_STYLE": "true",
            **redirect}


# Every end-to-end registry test runs against both layer stores.
LAYER_STORES = ["local", "s3"]


@pytest.fixture(scope="module", params=LAYER_STORES)
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"registry-server-{request.param}")
    env = layer_storage_env(request, request.param)
    with running_server(folder / "data", folder / "server.log", extra_env=env) as started:
        yield started
