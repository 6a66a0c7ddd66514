"""Group commit: concurrent writers share folder fsyncs, and none returns before a sync that
started after its own rename has finished."""
import threading
import time

from index.store import Store, files
from index.store.files import FolderSyncs

WRITERS = 16


def test_concurrent_writers_share_folder_syncs_and_each_waits_for_one_after_its_rename(tmp_path, monkeypatch):
    syncs: list[tuple[float, float]] = []  # (start, end) of every fsync of the folder
    lock = threading.Lock()

    def slow_fsync_dir(folder):
        started = time.monotonic()
        time.sleep(0.05)  # a journal commit on a slow disk
        with lock:
            syncs.append((started, time.monotonic()))

    monkeypatch.setattr(files, "fsync_dir", slow_fsync_dir)
    group = FolderSyncs()
    calls: list[tuple[float, float]] = []  # (request, return) of every writer
    start = threading.Barrier(WRITERS)

    def writer():
        start.wait()
        for _ in range(3):
            requested = time.monotonic()
            group.sync(tmp_path)
            with lock:
                calls.append((requested, time.monotonic()))

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 3 * WRITERS
    assert len(syncs) < len(calls) // 3  # shared: far fewer syncs than writes
    for requested, returned in calls:
        # Covered by a sync that started after the request and ended before the return.
        assert any(requested <= begun and ended <= returned for begun, ended in syncs)


def test_a_failed_sync_fails_its_leader_and_the_others_sync_again(tmp_path, monkeypatch):
    attempts = []

    def failing_once(folder):
        attempts.append(folder)
        if len(attempts) == 1:
            time.sleep(0.05)
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "fsync_dir", failing_once)
    group = FolderSyncs()
    outcomes = []

    def writer():
        try:
            group.sync(tmp_path)
            outcomes.append("ok")
        except OSError:
            outcomes.append("error")

    first = threading.Thread(target=writer)
    first.start()
    time.sleep(0.01)
    others = [threading.Thread(target=writer) for _ in range(3)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["error", "ok", "ok", "ok"]
    assert len(attempts) >= 2


def test_the_store_goes_through_the_group(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(files.FOLDER_SYNCS, "sync", lambda folder: seen.append(folder))
    store = Store(tmp_path / "data")
    store.open()
    store.announce_repository("alice", "app", [{"id": "a" * 64}], owner="alice")
    assert store.namespaces_dir in seen
