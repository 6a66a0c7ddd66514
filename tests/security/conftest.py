"""A real server process for attacks that must cross a socket, and small request helpers."""
from __future__ import annotations

import http.client
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ADMIN
from tests.processes import ROOT, clean_env, free_port, stop, wait_for_http

START_TIMEOUT_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 10.0
LIVE_FAILURE_LIMIT = 5
_FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    """Record a measured figure; all of them are printed at the end of the run."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("security figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@dataclass
class LiveServer:
    """gunicorn serving the index on 127.0.0.1:<port>, with its log file."""

    port: int
    data_dir: Path
    log_path: Path
    workers: int
    process: subprocess.Popen

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection; the path is sent exactly as given (no re-encoding)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders()
            if body is not None:
                try:
                    connection.send(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server may answer 413 and close before reading it all
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp_path: Path, *, workers: int = 2, extra_env: dict[str, str] | None = None) -> LiveServer:
    port = free_port()
    data_dir = tmp_path / "live-data"
    log_path = tmp_path / "server.log"
    env = clean_env({"INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4",
                     "INDEX_ADMIN_USERNAME": ADMIN[0], "INDEX_ADMIN_PASSWORD": ADMIN[1],
                     "INDEX_LOGIN_FAILURES_PER_MINUTE": str(LIVE_FAILURE_LIMIT), "INDEX_MAX_JSON_BYTES": "65536",
                     **(extra_env or {})})
    # The key is made once here so that both workers start with the same one at once.
    data_dir.mkdir(parents=True)
    (data_dir / "secret_key").write_text("live-server-test-key")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
             "--threads", "2", "--timeout", "30", "--graceful-timeout", "2", "--access-logfile", "-",
             "--log-level", "debug", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(port, data_dir, log_path, workers, process)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/_ping", process, log_path, START_TIMEOUT_SECONDS)
    except RuntimeError:
        stop_server(server)
        raise
    return server


def stop_server(server: LiveServer) -> None:
    """SIGTERM the gunicorn arbiter we started (it stops its workers), SIGKILL its own session's
    group (only our processes) if it lingers."""
    stop(server.process, timeout=10, kill_group=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("live"))
    yield server
    stop_server(server)
