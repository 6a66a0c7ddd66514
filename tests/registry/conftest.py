"""A real server process (gunicorn on a free loopback port) for the registry's end-to-end tests."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .v1client import V1Client

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
ADMIN = ("admin", "adminpass")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    def layer_file(self, image_id: str) -> Path:
        return self.data_dir / "layers" / image_id[:2] / f"{image_id}.layer"


def _wait_until_up(host: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection(host, timeout=2)
            try:
                connection.request("GET", "/v1/_ping")
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /v1/_ping within {START_TIMEOUT}s")


@contextlib.contextmanager
def running_server(data_dir: Path, log_path: Path, workers: int = 2, extra_env: dict | None = None):
    """gunicorn serving wsgi:app; always stopped (by its PID) on exit."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("INDEX_")}
    env.update({"INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4",
                "INDEX_SECRET_KEY": "registry-test-secret", "INDEX_ADMIN_USERNAME": ADMIN[0],
                "INDEX_ADMIN_PASSWORD": ADMIN[1], **(extra_env or {})})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", host, "--workers", str(workers),
             "--threads", "4", "--timeout", "120", "--graceful-timeout", "5",
             "--no-control-socket", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(host, process, log_path)
        yield Server(host, data_dir, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry-server")
    with running_server(folder / "data", folder / "server.log") as started:
        yield started
