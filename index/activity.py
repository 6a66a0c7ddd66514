"""Pull and push counts per repository, kept without a durable write per request.

A pull (``GET .../images``) or a push (docker's final ``PUT .../images``) only adds to this
worker's in-memory tally. A tally is merged into ``<data dir>/db/activity.json`` under that file's
lock (same durable replace as every data file) once it is older than ``INDEX_ACTIVITY_FLUSH_SECONDS``,
by the next request that records something, and at exit. So counts are batched: a worker that is
killed loses at most that many seconds of counts, never other data, and readers in other workers
see a pull after at most that delay. Counts are for the web pages and search ties, not for billing.

A worker does not keep the file's parse (at 100,000 repositories about 50 MiB): when the file
changed it works out what ranking and the home page need (each repository's latest activity, the
latest pushes) and drops the parse; one repository's counts (its page) are read straight from
the file's bytes.

    {"alice/app": {"pulls": 12, "pushes": 3, "last_pull": "...", "last_push": "...",
                   "last_push_by": "alice"}}
"""
from __future__ import annotations

import atexit
import contextlib
import heapq
import json
import logging
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from .store import Store
from .store.errors import StoreError
from .store.files import DataFile, FileVersion

log = logging.getLogger(__name__)

ACTIVITY_FILE = "activity.json"
TABLE = "repositories"
_FIELDS = ("pulls", "pushes")


def _flush_at_exit(ref: weakref.ref[Activity]) -> None:
    found = ref()
    if found is not None:
        found.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# The latest pushes kept for the home page (which shows the first few its viewer may read).
LATEST_PUSHES_KEPT = 1000


class _Flushed(NamedTuple):
    """What is kept of one version of the flushed file."""

    version: FileVersion | None
    recency: dict[str, float]               # ns/repo -> time of its latest pull or push
    latest_pushes: list[tuple[str, str]]    # (last push, ns/repo), the latest first
    complete: bool                          # latest_pushes holds every pushed repository


def _latest(stats: Mapping[str, Any]) -> float | None:
    """The time of a repository's latest pull or push, in seconds since 1970."""
    latest = max(stats.get("last_pull") or "", stats.get("last_push") or "")
    if latest:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(latest).timestamp()
    return None


def _merged(stored: Mapping[str, Any], pending: Mapping[str, Any]) -> dict[str, Any]:
    """Flushed counts with pending ones added: counters summed, pending times and names win."""
    entry = dict(stored)
    for field in _FIELDS:
        entry[field] = entry.get(field, 0) + pending.get(field, 0)
    entry.update({k: v for k, v in pending.items() if k not in _FIELDS})
    return entry


class Activity:
    """This worker's pending counts, and the merged view of every worker's flushed ones."""

    def __init__(self, store: Store, flush_seconds: float) -> None:
        self._store = store
        self._file = DataFile(Path(store.db_dir) / ACTIVITY_FILE)
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._since = time.monotonic()
        self._changes = 0  # counts every _add, so a merged view can be reused until the next one
        self._view_lock = threading.Lock()
        self._view: _Flushed | None = None
        # (the view and the change count it was merged at, the merged recency)
        self._recency: tuple[_Flushed, int, dict[str, float]] | None = None
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
        if due:
            self.flush()

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
                self._file.write(data, retain=False)  # readers keep what they derive, not this
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
        stored = self._stored_entry(repository)
        with self._lock:
            pending = self._pending.get(repository)
            if pending is None:
                return stored if stored is not None else {"pulls": 0, "pushes": 0}
            return _merged(stored or {}, pending)

    def _stored_entry(self, repository: str) -> dict[str, Any] | None:
        """One repository's flushed counts, found in the file's bytes without parsing all of it.

        The file is ours: repository names are keys of the one table, each one flat object, and
        ``"ns/repo":`` cannot occur elsewhere (values are numbers, times and account names).
        """
        try:
            raw = self._file.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("could not read pull/push counts: %s", exc)
            return None
        start = raw.find(json.dumps(repository).encode() + b":{")
        if start == -1:
            return None
        start = raw.index(b"{", start)
        try:
            found = json.loads(raw[start:raw.index(b"}", start) + 1])
        except ValueError as exc:
            log.warning("could not read pull/push counts: %s", exc)
            return None
        return found if isinstance(found, dict) else None

    def _flushed(self) -> _Flushed:
        """What ranking and the home page need of the flushed counts, worked out again only when
        the file changed; the file's parse is not kept (at 100,000 repositories it was 50 MiB)."""
        with self._view_lock:
            view = self._view
            try:
                changed = self._file.read_if_changed(view.version if view is not None else None)
            except (StoreError, OSError) as exc:
                log.warning("could not read pull/push counts: %s", exc)
                changed = None
            if changed is None:
                return view if view is not None else _Flushed(None, {}, [], True)
            version, data = changed
            recency: dict[str, float] = {}
            pushes: list[tuple[str, str]] = []
            for repository, stats in data.get(TABLE, {}).items():
                latest = _latest(stats)
                if latest is not None:
                    # A copy: a string of the parse kept alive would keep the parse's memory
                    # pages (one in every few thousand objects is enough), after it is dropped.
                    recency[repository.encode().decode()] = latest
                if stats.get("last_push"):
                    pushes.append((stats["last_push"], repository))
            latest_pushes = [(pushed.encode().decode(), repository.encode().decode())
                             for pushed, repository in heapq.nlargest(LATEST_PUSHES_KEPT, pushes)]
            self._view = _Flushed(version, recency, latest_pushes, len(pushes) <= LATEST_PUSHES_KEPT)
            return self._view

    def latest_pushes(self) -> Iterator[tuple[str, str]]:
        """(time of the last push, ``ns/repo``) of every pushed repository, the latest first
        (flushed by any worker, with this worker's pending pushes): what the home page lists."""
        view = self._flushed()
        with self._lock:
            pending = {repository: counts["last_push"] for repository, counts in self._pending.items()
                       if counts.get("last_push")}
        mine = sorted(((pushed, repository) for repository, pushed in pending.items()), reverse=True)
        yield from heapq.merge(mine, self._stored_pushes(view, pending), reverse=True)

    def _stored_pushes(self, view: _Flushed, pending: Collection[str]) -> Iterator[tuple[str, str]]:
        """The flushed pushes, latest first, but those ``pending`` (whose pending push is later)."""
        yield from ((pushed, repository) for pushed, repository in view.latest_pushes if repository not in pending)
        if view.complete:
            return
        # Past the kept ones (rare: a home page whose viewer may read none of the latest pushes).
        last = view.latest_pushes[-1]
        data = self._file.read_shared(retain=False)
        yield from sorted(((stats["last_push"], repository) for repository, stats in data.get(TABLE, {}).items()
                           if stats.get("last_push") and repository not in pending
                           and (stats["last_push"], repository) < last), reverse=True)

    def recency(self) -> Mapping[str, float]:
        """``ns/repo`` -> time of its latest pull or push (seconds since 1970), for ranking.

        The flushed file's part is worked out again only when the file changed; this worker's
        pending pulls and pushes are laid over it (a copy only while there are some).
        """
        view = self._flushed()
        with self._lock:
            if not self._pending:
                return view.recency
            cached = self._recency
            if cached is not None and cached[0] is view and cached[1] == self._changes:
                return cached[2]
            pending = {repository: _latest(counts) for repository, counts in self._pending.items()}
            changes = self._changes
        merged = dict(view.recency)
        for repository, latest in pending.items():
            if latest is not None:
                merged[repository] = max(latest, merged.get(repository, latest))
        with self._lock:
            self._recency = (view, changes, merged)
        return merged

    def forget(self, repository: str) -> None:
        """Drop a deleted repository's counts (a new repository of that name starts at zero)."""
        with self._lock:
            self._pending.pop(repository, None)
        if not self._file.path.exists():
            return
        with self._store.writing(), self._file.locked():
            data = self._file.read_private()
            if data.get(TABLE, {}).pop(repository, None) is not None:
                self._file.write(data, retain=False)  # readers keep what they derive, not this
