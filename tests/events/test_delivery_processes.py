"""Webhooks through real server processes: two workers, restarts and kill -9 with deliveries
pending; every event still arrives, each attempted by one worker at a time."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from index.passwords import hash_password
from index.store import Store
from tests.processes import ROOT, clean_env, free_port, http_call, stop, wait_for_http

from .receiver import Receiver

pytestmark = pytest.mark.live  # starts processes

AUTH = {"Authorization": "Basic " + base64.b64encode(b"alice:secret1").decode()}
PUSHES = 6


def _start(data_dir, log_path, port):
    env = clean_env({"INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4", "INDEX_PORT": str(port),
                     "INDEX_SECRET_KEY": "events-process-test-key-0123456789abcdef", "INDEX_WORKERS": "2", "INDEX_THREADS": "4",
                     "INDEX_WEBHOOK_ALLOW_PRIVATE": "true", "INDEX_WEBHOOK_RETRY_SECONDS": "1",
                     "INDEX_WEBHOOK_RETRY_MAX_SECONDS": "2"})
    with open(log_path, "ab") as log:
        # Its own session: kill -9 then reaches the master and its workers (all ours).
        process = subprocess.Popen([sys.executable, "-m", "index", "serve"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_http(f"http://127.0.0.1:{port}/healthz", process, log_path, timeout=30)
    return process


def _kill_9(process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _push(base: str, repository: str) -> None:
    """The index side of a push: announce, then docker's final PUT of the image list."""
    image = f"{abs(hash(repository)):064x}"[-64:]
    status, _, body = http_call(base, "PUT", f"/v1/repositories/alice/{repository}/", [{"id": image}],
                                {**AUTH, "X-Docker-Token": "true"})
    assert status == 200, body
    status, _, body = http_call(base, "PUT", f"/v1/repositories/alice/{repository}/images", [],
                                {**AUTH, "X-Docker-Token": "true", "X-Docker-Endpoints": "localhost"})
    assert status == 204, body


def _pending(data_dir) -> int:
    folder = data_dir / "outbox"
    return sum(1 for name in os.listdir(folder) if name.endswith(".json")) if folder.exists() else 0


def test_pending_deliveries_survive_kill_9_and_arrive_once_each(tmp_path):
    data_dir = tmp_path / "data"
    seeded = Store(data_dir)
    seeded.open()
    seeded.create_user("alice", hash_password("secret1", 4), "alice@example.com")
    seeded.close()
    receiver = Receiver()  # not listening yet: every attempt fails
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    process = _start(data_dir, log_path, port)
    try:
        status, _, body = http_call(base, "POST", "/api/v1/user/notification/",
                                    {"event": "repo_push", "config": {"url": receiver.url,
                                                                      "secret": "a-secret-for-the-test"}}, AUTH)
        assert status == 201, body
        for n in range(PUSHES):
            _push(base, f"app{n}")
        assert _pending(data_dir) == PUSHES  # on disk before docker was answered
        deadline = time.monotonic() + 20
        while b'"attempt":1' not in (data_dir / "db" / "notifications.json").read_bytes():
            assert time.monotonic() < deadline, "no worker attempted a delivery"
            time.sleep(0.1)
        _kill_9(process)
        assert _pending(data_dir) == PUSHES

        # Restarted with the receiver up (and slow, so two workers would collide without claims).
        receiver.delay = 0.3
        receiver.start()
        process = _start(data_dir, log_path, port)
        received = receiver.wait_for(PUSHES, timeout=40)
        deadline = time.monotonic() + 20
        while _pending(data_dir):
            assert time.monotonic() < deadline, "the outbox did not empty"
            time.sleep(0.1)
        time.sleep(1.5)  # a late duplicate would show up within a poll interval
        received = list(receiver.received)
        counts = Counter(item.headers["X-Index-Delivery"] for item in received)
        assert len(counts) == PUSHES and set(counts.values()) == {1}, counts
        assert {item.json["repository"] for item in received} == {f"alice/app{n}" for n in range(PUSHES)}
        assert all(item.signed_with("a-secret-for-the-test") for item in received)

        # A plain restart (SIGTERM) with a delivery queued while the receiver is down: delivered later.
        receiver.stop()
        _push(base, "after-restart")
        stop(process, kill_group=True)
        receiver.delay = 0.0
        receiver.start()
        process = _start(data_dir, log_path, port)
        later = receiver.wait_for(PUSHES + 1, timeout=30)
        assert later[-1].json["repository"] == "alice/after-restart"
    finally:
        receiver.stop()
        stop(process, kill_group=True)
