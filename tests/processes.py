"""Real server processes in tests: a free loopback port, a clean environment, a bounded wait until
the process answers over HTTP, and a stop by its own PID. Standard library only (bench scripts
import it too); which command runs with which settings stays with each caller.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from index.ops.v1client import V1Client

ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_CHARS = 3000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any INDEX_* of the caller's, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INDEX_")}
    env.update(settings or {})
    return env


def _answers_200(url: str, ssl_context: ssl.SSLContext | None) -> bool:
    # http.client rather than urllib: no proxy from the caller's environment gets in the way.
    parts = urlsplit(url)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=2, context=ssl_context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def _log_tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path | None, timeout: float,
                  ssl_context: ssl.SSLContext | None = None) -> None:
    """Return once one GET ``url`` answers 200; raise RuntimeError (with the log's tail) if the
    process exits first or ``timeout`` seconds pass. The process is left running either way."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_log_tail(log_path)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _answers_200(url, ssl_context):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer {url} within {timeout} s:\n{_log_tail(log_path)}")
        time.sleep(0.1)


def kill_9_server(master: int) -> None:
    """SIGKILL a server's workers (the children of ``master``, read from ``/proc``), then
    ``master`` itself: only the processes the test started, as a crash would end them."""
    children = Path(f"/proc/{master}/task/{master}/children")
    for child in (int(pid) for pid in children.read_text().split()) if children.exists() else ():
        os.kill(child, signal.SIGKILL)
    os.kill(master, signal.SIGKILL)


def stop(process: subprocess.Popen, timeout: float = 15.0, *, kill_group: bool = False) -> None:
    """SIGTERM the process we started; SIGKILL it if it lingers past ``timeout``. ``kill_group``
    is only for a process started with ``start_new_session=True``: its group holds only ours."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        if kill_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(timeout)


def http_call(base_url: str, method: str, path: str, body=None, headers: Mapping[str, str] | None = None,
              timeout: float = 10):
    """One request to a live server through the shared v1 client: ``(status, headers, body bytes)``.

    A ``body`` is sent as JSON.
    """
    all_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    reply = V1Client(base_url, timeout=timeout).request(method, path, data, all_headers)
    return reply.status, reply.headers, reply.body
