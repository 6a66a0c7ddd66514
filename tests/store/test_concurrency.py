"""Read-modify-writes from several processes (and threads in each) on one namespace and repository."""
import os
import threading
import time

import pytest

from index.store import Store
from tests.store.crashes import image_id

pytestmark = pytest.mark.live  # forks writers

PROCESSES = 4
THREADS = 2
MERGES = 15  # per thread, into the one shared repository
CREATES = 5  # per thread, new repositories in the same namespace file


def _worker(data_dir, proc: int) -> None:
    """Runs in a forked child; any exception makes its exit code non-zero."""
    store = Store(data_dir)
    store.open()
    errors = []

    def work(thread: int) -> None:
        try:
            for n in range(MERGES):
                store.merge_images("team", "shared", [{"id": image_id(proc, thread, n)}])
            for n in range(CREATES):
                store.announce_repository("team", f"p{proc}t{thread}n{n}", [{"id": image_id(proc, thread, 99, n)}],
                                          owner="alice")
            store.create_user(f"user{proc}x{thread}", "hash", f"user{proc}x{thread}@example.com")
        except Exception as exc:  # noqa: BLE001 - reported through the exit code
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    os._exit(1 if errors or any(t.is_alive() for t in threads) else 0)


def test_concurrent_read_modify_writes_lose_nothing(tmp_path):
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    store.open()
    store.create_user("alice", "hash", "alice@example.com")
    store.announce_repository("team", "shared", [], owner="alice")

    pids = []
    for proc in range(PROCESSES):
        pid = os.fork()
        if pid == 0:
            try:
                _worker(data_dir, proc)
            finally:
                os._exit(2)
        pids.append(pid)
    deadline = time.monotonic() + 120
    statuses = []
    for pid in pids:
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses.append(os.waitstatus_to_exitcode(status))
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            statuses.append("timeout")
    assert statuses == [0] * PROCESSES

    fresh = Store(data_dir)  # another process's view, no cache shared with the writers
    fresh.open()
    shared = {image["id"] for image in fresh.get_repository("team", "shared")["images"]}
    assert shared == {image_id(p, t, n) for p in range(PROCESSES) for t in range(THREADS) for n in range(MERGES)}
    names = {record["name"] for record in fresh.iter_repositories("team")}
    assert names == {"shared"} | {f"p{p}t{t}n{n}" for p in range(PROCESSES) for t in range(THREADS)
                                  for n in range(CREATES)}
    assert len(fresh.list_users()) == 1 + PROCESSES * THREADS
    # The long-lived store in this process sees the other processes' writes through its cache.
    assert len(store.get_repository("team", "shared")["images"]) == len(shared)
