"""The durable outbox: one file per pending delivery in ``<data dir>/outbox/``.

A delivery is written (temp file, fsync, rename, folder fsync) before the request that caused it
is answered, so an event whose push docker saw succeed survives ``kill -9`` and restarts. Files are
only ever replaced whole. Whoever attempts a delivery holds ``<id>.lock`` (an flock, released by
the kernel when a process dies), so with several workers each delivery is tried by one at a time.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store.files import TEMP_MARK, ForkSafe, LockBusy, atomic_write_bytes, ensure_dir, flocked, fsync_dir

OUTBOX_FOLDER = "outbox"
SUFFIX = ".json"
# A write takes milliseconds: a temp file this old was left by a process that died mid-write.
STALE_TEMP_SECONDS = 3600


class Outbox(ForkSafe):
    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / OUTBOX_FOLDER
        # name -> ((inode, mtime_ns, size), entry): a backlog is stat'ed, not re-read, every pass.
        self._seen: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        super().__init__()

    def _new_locks(self) -> None:
        self._seen_lock = threading.Lock()

    def add(self, event_id: str, notification_id: str, event: str, body: bytes) -> str:
        """Queue one delivery of ``body`` to one notification; durable on return."""
        delivery_id = f"{event_id}.{notification_id}"
        entry = {"id": delivery_id, "event_id": event_id, "notification": notification_id, "event": event,
                 "body": body.decode("utf-8"), "created": time.time(), "attempts": 0, "next_at": 0.0}
        ensure_dir(self.folder)
        atomic_write_bytes(self._path(delivery_id), json.dumps(entry).encode())
        return delivery_id

    def _path(self, delivery_id: str) -> Path:
        return self.folder / f"{delivery_id}{SUFFIX}"

    def pending(self) -> list[dict[str, Any]]:
        """Every queued delivery (unreadable leftovers are skipped), oldest first."""
        current: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        try:
            with os.scandir(self.folder) as listing:
                found = [item for item in listing if item.name.endswith(SUFFIX)]
        except FileNotFoundError:
            return []
        with self._seen_lock:
            seen = self._seen
        for item in found:
            try:
                info = item.stat()
            except FileNotFoundError:
                continue  # delivered meanwhile
            version = (info.st_ino, info.st_mtime_ns, info.st_size)
            known = seen.get(item.name)
            entry = known[1] if known is not None and known[0] == version else self._read(Path(item.path))
            if entry is not None:
                current[item.name] = (version, entry)
        with self._seen_lock:
            self._seen = current
        return sorted((dict(entry) for _, entry in current.values()), key=lambda entry: entry["created"])

    def depth(self) -> int:
        try:
            return sum(1 for name in os.listdir(self.folder) if name.endswith(SUFFIX))
        except FileNotFoundError:
            return 0

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            entry = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # never written half (atomic rename); a damaged disk is not ours to fix here
        return entry if isinstance(entry, dict) and "id" in entry else None

    @contextlib.contextmanager
    def claim(self, delivery_id: str) -> Iterator[dict[str, Any] | None]:
        """Hold one delivery for an attempt: its current entry, or None when another process is on
        it or it is gone (delivered meanwhile)."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(flocked(self.folder / f"{delivery_id}.lock", exclusive=True, timeout=0))
            except LockBusy:
                yield None
                return
            yield self._read(self._path(delivery_id))

    def reschedule(self, entry: dict[str, Any]) -> None:
        """Store the entry's new attempt count and next time (inside :meth:`claim`)."""
        atomic_write_bytes(self._path(entry["id"]), json.dumps(entry).encode())

    def remove(self, delivery_id: str) -> None:
        """Delivered or given up (inside :meth:`claim`); the lock file goes too."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(delivery_id))
        with contextlib.suppress(OSError):
            fsync_dir(self.folder)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / f"{delivery_id}.lock")

    def remove_stale_temp_files(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        removed = 0
        try:
            names = [name for name in os.listdir(self.folder) if TEMP_MARK in name]
        except FileNotFoundError:
            return 0
        for name in names:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(self.folder / name).st_mtime > older_than:
                    os.unlink(self.folder / name)
                    removed += 1
        return removed

    @staticmethod
    def new_event_id() -> str:
        return secrets.token_hex(16)
