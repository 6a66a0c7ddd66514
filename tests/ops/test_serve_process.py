"""``python -m index serve`` (= ``make run``) as a real process: bad settings, TLS, SIGTERM."""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from index.ops.certs import write_self_signed
from index.ops.selfcheck import new_session, run_checks
from tests.ops.processes import run_serve, serving

pytestmark = pytest.mark.live  # starts processes


@pytest.mark.parametrize("setting, value, line", [
    ("INDEX_REGISTRATION", "sometimes",
     "error: INDEX_REGISTRATION: must be one of open, confirm, approval, closed, got 'sometimes'"),
    ("INDEX_PORT", "http", "error: INDEX_PORT: must be a port number (1-65535), got 'http'"),
    ("INDEX_TLS_CERT", "{tmp}/missing.pem", "error: INDEX_TLS_CERT: cannot read {tmp}/missing.pem: No such file or directory"),
    ("INDEX_DATA_DIR", "{tmp}/a-file/data", "error: INDEX_DATA_DIR: cannot create {tmp}/a-file/data: Not a directory"),
    ("INDEX_SECRET_KEY", "short", "error: INDEX_SECRET_KEY: must be at least 32 bytes, got 5 (make one with: "
                                  "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), or unset it to have one generated"),
])
def test_a_bad_setting_stops_the_start_with_one_clear_line(tmp_path, setting, value, line):
    (tmp_path / "a-file").write_text("")
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), setting: value.format(tmp=tmp_path)}
    if setting == "INDEX_TLS_CERT":
        settings["INDEX_TLS_KEY"] = str(tmp_path / "key.pem")
    finished = run_serve(settings)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [line.format(tmp=tmp_path)]
    assert finished.stdout == ""


def test_a_port_in_use_is_one_line_and_exit_2_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = run_serve({"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_PORT": str(port)})
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"error: INDEX_PORT: 127.0.0.1:{port} is already in use by another program (another index still "
        f"running?); stop it or choose another INDEX_PORT"]
    assert not (tmp_path / "data").exists() or not (tmp_path / "data" / "db").exists()  # nothing started


def test_a_certificate_and_key_that_do_not_match_are_one_line(tmp_path):
    cert, _ = write_self_signed(tmp_path / "a", ["127.0.0.1"])
    _, other_key = write_self_signed(tmp_path / "b", ["127.0.0.1"])
    finished = run_serve({"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_TLS_CERT": str(cert),
                          "INDEX_TLS_KEY": str(other_key)})
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"error: INDEX_TLS_KEY: {other_key} is not the key of the certificate INDEX_TLS_CERT {cert} (they do not match)"]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_tls_with_a_generated_certificate_and_two_workers(tmp_path):
    cert, key = write_self_signed(tmp_path / "certs", ["127.0.0.1", "localhost"])
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_TLS_CERT": str(cert),
                "INDEX_TLS_KEY": str(key), "INDEX_WORKERS": "2", "INDEX_SECRET_KEY": "process-secret-key-0123456789abcdef"}
    with serving(settings, tmp_path / "serve.log", scheme="https", ca_file=cert) as served:
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{served.url}/v1/_ping", context=context, timeout=5) as answer:
            assert answer.status == 200
            assert answer.headers["X-Docker-Registry-Standalone"] == "false"
        # A client that does not trust the certificate refuses the connection.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"{served.url}/v1/_ping", timeout=5)
        # The docker flows work over it, across both workers.
        session = new_session(served.url, "tlsuser", "tls-pass-1", ca_file=str(cert))
        report: list[str] = []
        assert run_checks(session, echo=report.append), report
        untrusting = new_session(served.url, "tlsuser", "tls-pass-1")
        report = []
        assert not run_checks(untrusting, echo=report.append)
        assert report[0].startswith("FAIL  ping: cannot reach") and "CERTIFICATE_VERIFY_FAILED" in report[0]
        # Plain http to the TLS port gets no HTTP answer.
        plain = served.url.replace("https://", "http://")
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
            urllib.request.urlopen(f"{plain}/v1/_ping", timeout=5).read()
    log = served.log()
    assert log.count("Started worker-") >= 2
    assert '"SECRET_KEY": "***"' in log
    assert "process-secret-key-0123456789abcdef" not in log


def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_WORKERS": "1", "INDEX_THREADS": "2",
                "INDEX_LOG_FORMAT": "json"}
    with serving(settings, tmp_path / "serve.log") as served:
        body = json.dumps({"username": "alice", "password": "secret1", "email": "alice@example.com"}).encode()
        request = urllib.request.Request(f"{served.url}/v1/users/", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 201

        port = int(served.url.rsplit(":", 1)[1])
        images = json.dumps([{"id": "a" * 64, "Tag": "latest"}]).encode()
        head = (f"PUT /v1/repositories/alice/app/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: {_basic('alice', 'secret1')}\r\nX-Docker-Token: true\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(images)}\r\n"
                f"Connection: close\r\n\r\n").encode()
        # Timeouts are generous: on a loaded machine every step may take seconds.
        with socket.create_connection(("127.0.0.1", port), timeout=60) as upload:
            upload.sendall(head + images[:10])          # the upload has started ...
            # ... and the server has read what was sent (so it is in flight: a connection the
            # server has not read from when it is told to stop is closed unanswered) ...
            _wait_until_read(port, upload.getsockname()[1])
            time.sleep(0.5)  # and has passed it on to the app (microseconds of work, on a loaded machine more)
            served.process.send_signal(signal.SIGTERM)  # ... when the server is told to stop
            # Until the request is answered, the server is still running.
            with pytest.raises(subprocess.TimeoutExpired):
                served.process.wait(1.0)
            upload.sendall(images[10:])
            answer = b""
            while chunk := upload.recv(65536):
                answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", answer[:300]
        assert b"x-docker-token: signature=" in rest.lower()
        assert served.process.wait(60) == 0
    entries = [json.loads(line) for line in served.log().splitlines()]  # granian's lines too
    assert any(entry.get("message") == "Shutting down granian" for entry in entries)
    requests = [(entry["method"], entry["path"], entry["status"]) for entry in entries if "method" in entry]
    # The start-up wait may have polled /healthz more than once (an answer slower than its timeout).
    assert ("GET", "/healthz", 200) in requests
    assert [request for request in requests if request[1] != "/healthz"] == \
        [("POST", "/v1/users/", 201), ("PUT", "/v1/repositories/alice/app/", 200)]


def _wait_until_read(server_port: int, client_port: int, timeout: float = 60.0) -> None:
    """Wait until the server's end of the connection from ``client_port`` has nothing left
    unread (``/proc/net/tcp``: its receive queue is empty), i.e. the server accepted it and
    read the request's head."""
    deadline = time.monotonic() + timeout
    while True:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if (int(local.rpartition(":")[2], 16), int(remote.rpartition(":")[2], 16)) == (server_port, client_port):
                if int(queues.partition(":")[2], 16) == 0:
                    return
        assert time.monotonic() < deadline, "the server did not read the request within the timeout"
        time.sleep(0.02)


def test_without_proxy_count_no_forwarded_header_is_believed(tmp_path):
    # The server must not believe X-Forwarded-* from 127.0.0.1 by itself; only INDEX_PROXY_COUNT may.
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_REGISTRATION": "confirm",
                "INDEX_PUBLIC_HOST": "index.example.com"}
    with serving(settings, tmp_path / "serve.log") as served:
        body = json.dumps({"username": "alice", "password": "secret1", "email": "alice@example.com"}).encode()
        request = urllib.request.Request(
            f"{served.url}/v1/users/", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https",
                     "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 201
    log = served.log()
    # The scheme is the connection's own (http): X-Forwarded-Proto was not believed.
    assert "activation link for alice <alice@example.com>: http://index.example.com/account/activate?token=" in log
    assert "127.0.0.1 - POST /v1/users/ 201" in log
    assert "203.0.113.9" not in log and "evil.example" not in log


def test_a_worker_killed_with_sigkill_is_replaced(tmp_path):
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_WORKERS": "1"}
    with serving(settings, tmp_path / "serve.log") as served:
        children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{served.url}/v1/_ping", timeout=2) as answer:
                    status = answer.status
                    replaced = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
                    if status == 200 and replaced and replaced != children:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200
        assert replaced and replaced != children
