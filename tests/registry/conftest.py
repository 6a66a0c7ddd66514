"""A real server process (``python -m index serve``, as ``make run`` starts it, on a free loopback
port) for the registry's end-to-end tests."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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

    def layer_file(self, image_id: str, uploader: str | None = None) -> Path:
        return storage.layer_file(self.data_dir, image_id, uploader)


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
        yield Server(host, data_dir, process)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry-server")
    with running_server(folder / "data", folder / "server.log") as started:
        yield started
