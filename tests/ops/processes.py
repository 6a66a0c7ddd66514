"""Starting ``python -m index serve`` (what ``make run`` runs) as a real process, and stopping it."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_env(settings: dict[str, str]) -> dict[str, str]:
    """This environment without any INDEX_* of the caller's, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INDEX_")}
    env.update(settings)
    return env


def run_serve(settings: dict[str, str], timeout: float = START_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run serve to completion (for starts that must fail)."""
    return subprocess.run([sys.executable, "-m", "index", "serve"], cwd=ROOT, env=serve_env(settings),
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def serving(settings: dict[str, str], log_path: Path, *, scheme: str = "http",
            ca_file: Path | None = None) -> Iterator[Served]:
    """Start serve on a free port, wait until /healthz answers, and stop it (by its PID) on exit."""
    port = free_port()
    settings = {"INDEX_PORT": str(port), "INDEX_BCRYPT_ROUNDS": "4", **settings}
    url = f"{scheme}://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "index", "serve"], cwd=ROOT,
                                   env=serve_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=context) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer within {START_TIMEOUT_SECONDS} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Served(process, url, log_path)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)
