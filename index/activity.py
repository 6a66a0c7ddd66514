"""Pull and push counts per repository, kept without a durable write per request.

A pull (``GET .../images``) or a push (docker's final ``PUT .../images``) only adds to this
worker's in-memory tally. A tally is merged into ``<data dir>/db/activity.json`` under that file's
lock (same durable replace as every data file) once it is older than ``INDEX_ACTIVITY_FLUSH_SECONDS``,
by the next request that records something, and at exit. So counts are batched: a worker that is
killed loses at most that many seconds of counts, never other data, and readers in other workers
see a pull after at most that delay. Counts are for the web pages and search ties, not for billing.

    {"alice/app": {"pulls": 12, "pushes": 3, "last_pull": "...", "last_push": "...",
                   "last_push_by": "alice"}}
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .store import Store
from .store.errors import StoreError
from .store.files import DataFile

log = logging.getLogger(__name__)

ACTIVITY_FILE = "activity.json"
TABLE = "repositories"
_FIELDS = ("pulls", "pushes")


def _flush_at_exit(ref: weakref.ref[Activity]) -> None:
    found = ref()
    if found is not None:
        found.wait_for_flush()
        found.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Activity:
    """This worker's pending counts, and the merged view of every worker's flushed ones."""

    def __init__(self, store: Store, flush_seconds: float) -> None:
        self._store = store
        self._file = DataFile(Path(store.db_dir) / ACTIVITY_FILE)
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._since = time.monotonic()
        # (the counts it was computed from, recency): reused while all() returns the same object
        self._changes = 0  # counts every _add, so a merged view can be reused until the next one
        self._merged: tuple[dict[str, dict[str, Any]], int, dict[str, dict[str, Any]]] | None = None
        self._recency: tuple[dict[str, dict[str, Any]], dict[str, float]] | None = None
        self._flusher: threading.Thread | None = None
        ref = weakref.ref(self)
        atexit.register(_flush_at_exit, ref)

    def pulled(self, repository: str) -> None:
        self._add(repository, "pulls", {"last_pull": _now()})

    def pushed(self, repository: str, by: str | None) -> None:
        self._add(repository, "pushes", {"last_push": _now(), "last_push_by": by})

    def _add(self, repository: str, counter: str, stamps: dict[str, Any]) -> None:
        with self._lock:
            entry = self._pending.setdefault(repository, {})
            entry[counter] = entry.get(counter, 0) + 1
            entry.update(stamps)
            self._changes += 1
            due = time.monotonic() - self._since >= self._flush_seconds
            if due and (self._flusher is None or not self._flusher.is_alive()):
                # In a thread of its own: a pull answered on the event loop's thread
                # (index/ops/quick_requests.py) must not wait for the file's lock and fsync.
                self._since = time.monotonic()
                self._flusher = threading.Thread(target=self.flush, name="activity-flush", daemon=True)
                self._flusher.start()

    def wait_for_flush(self, timeout: float = 30.0) -> None:
        """Let a flush under way finish (at exit, before the last one)."""
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout)

    def flush(self) -> None:
        """Merge the pending counts into the file (a failure keeps them for the next try)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._since = time.monotonic()
        if not pending:
            return
        try:
            with self._store.writing(), self._file.locked():
                data = self._file.read_private()
                table = data.setdefault(TABLE, {})
                for repository, counts in pending.items():
                    merged = dict(table.get(repository, {}))
                    for field in _FIELDS:
                        if field in counts:
                            merged[field] = merged.get(field, 0) + counts[field]
                    merged.update({k: v for k, v in counts.items() if k not in _FIELDS})
                    table[repository] = merged
                self._file.write(data)
        except (StoreError, OSError) as exc:
            log.warning("could not save pull/push counts (kept for the next try): %s", exc)
            with self._lock:
                for repository, counts in pending.items():
                    entry = self._pending.setdefault(repository, {})
                    for field in _FIELDS:
                        if field in counts:
                            entry[field] = entry.get(field, 0) + counts[field]
                    entry.update({k: v for k, v in counts.items() if k not in _FIELDS and k not in entry})

    def of(self, repository: str) -> dict[str, Any]:
        """Flushed counts plus this worker's pending ones for one repository."""
        return self.all().get(repository, {"pulls": 0, "pushes": 0})

    def all(self) -> dict[str, dict[str, Any]]:
        """Every repository's counts (flushed by any worker, plus this worker's pending ones)."""
        stored: dict[str, dict[str, Any]] = {}
        if self._file.path.exists():
            try:
                stored = self._file.read_shared().get(TABLE, {})
            except (StoreError, OSError) as exc:
                log.warning("could not read pull/push counts: %s", exc)
        with self._lock:
            if not self._pending:
                return stored
            cached = self._merged
            if cached is not None and cached[0] is stored and cached[1] == self._changes:
                return cached[2]
            merged = dict(stored)
            for repository, counts in self._pending.items():
                entry = dict(merged.get(repository, {}))
                for field in _FIELDS:
                    entry[field] = entry.get(field, 0) + counts.get(field, 0)
                entry.update({k: v for k, v in counts.items() if k not in _FIELDS})
                merged[repository] = entry
            self._merged = (stored, self._changes, merged)
            return merged

    def recency(self) -> dict[str, float]:
        """``ns/repo`` -> time of its latest pull or push (seconds since 1970), for ranking.

        Worked out again only when the flushed file or this worker's tally changed.
        """
        counts = self.all()
        with self._lock:
            if self._recency is not None and self._recency[0] is counts:
                return self._recency[1]
        found: dict[str, float] = {}
        for repository, stats in counts.items():
            latest = max(stats.get("last_pull") or "", stats.get("last_push") or "")
            if latest:
                with contextlib.suppress(ValueError):
                    found[repository] = datetime.fromisoformat(latest).timestamp()
        with self._lock:
            self._recency = (counts, found)
        return found

    def forget(self, repository: str) -> None:
        """Drop a deleted repository's counts (a new repository of that name starts at zero)."""
        with self._lock:
            self._pending.pop(repository, None)
        if not self._file.path.exists():
            return
        with self._store.writing(), self._file.locked():
            data = self._file.read_private()
            if data.get(TABLE, {}).pop(repository, None) is not None:
                self._file.write(data)
