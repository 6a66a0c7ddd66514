"""Starting ``python -m index serve`` (what ``make run`` runs) as a real process, and stopping it."""
from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import ROOT, clean_env, free_port, stop, wait_for_http

START_TIMEOUT_SECONDS = 30.0


def run_serve(settings: dict[str, str], timeout: float = START_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run serve to completion (for starts that must fail)."""
    return subprocess.run([sys.executable, "-m", "index", "serve"], cwd=ROOT, env=clean_env(settings),
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
                                   env=clean_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"{url}/healthz", process, log_path, START_TIMEOUT_SECONDS, ssl_context=context)
        yield Served(process, url, log_path)
    finally:
        stop(process)
