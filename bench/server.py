"""The index under test, started exactly as ``make run`` starts it, in its own process group."""
from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the index package, from this checkout

from procstat import children  # noqa: E402

from index.ops.v1client import V1Client  # noqa: E402

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 40.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM a process we started; SIGKILL it if it lingers past ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@contextlib.contextmanager
def running(data_dir: Path, log_path: Path, workers: int | None = None) -> Iterator[Server]:
    """A started :class:`Server`, stopped on exit whatever happens."""
    server = Server(data_dir, log_path, workers=workers)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Server:
    """``make run`` on a free loopback port in its own process group (so it is stopped whole)."""

    def __init__(self, data_dir: Path, log_path: Path, workers: int | None = None,
                 root: Path = ROOT) -> None:
        self.root = root  # another checkout (an older commit, for before/after) runs its own code
        self.data_dir = data_dir
        self.workers_wanted = workers  # None: the Makefile's default
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.profilers: list[subprocess.Popen] = []

    def start(self) -> None:
        env = {**os.environ, "INDEX_DATA_DIR": str(self.data_dir)}
        if self.root != ROOT:
            env["PYTHONPATH"] = str(self.root)  # ahead of the editable install of this checkout
        for name in ("INDEX_SECRET_KEY", "INDEX_ADMIN_USERNAME", "INDEX_ADMIN_PASSWORD",
                     "INDEX_BCRYPT_ROUNDS", "INDEX_CREDENTIAL_CACHE_SECONDS", "INDEX_TOKEN_TTL",
                     "INDEX_REGISTRY_ENDPOINTS", "INDEX_REGISTRATION"):
            env.pop(name, None)  # production defaults, whatever the caller's shell holds
        if self.workers_wanted is not None:
            env["INDEX_WORKERS"] = str(self.workers_wanted)
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(self.root), "run", f"HOST={HOST}", f"PORT={self.port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early; see {self.log_path}:\n{self.log_tail()}")
            try:
                status = V1Client(f"{HOST}:{self.port}", timeout=5.0).request("GET", "/v1/_ping").status
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /v1/_ping within {START_TIMEOUT_SECONDS:.0f} s")

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    def worker_pids(self) -> list[int]:
        """The server's workers: the children of the server process, the child of our make."""
        assert self.process is not None
        return [worker for master in children(self.process.pid) for worker in children(master)]

    def profile(self, py_spy: str, prefix: Path, seconds: float) -> None:
        """Sample every worker with py-spy for ``seconds`` (in the background), raw stacks to files."""
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for pid in self.worker_pids():
            command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                       "--rate", "200", "--nonblocking", "--format", "raw", "--output", f"{prefix}-worker{pid}.txt"]
            self.profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def workers(self) -> int:
        return len(self.worker_pids()) if self.process is not None and self.process.poll() is None else 0

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
        # make exits before the server has finished its graceful stop: wait for the group to end.
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)
