"""Pull and push counts per repository, kept without a durable write per request.

A pull (``GET .../images``) or a push (docker's final ``PUT .../images``) only adds to this
worker's in-memory tally. A tally is merged into the shards ``<data dir>/db/activity/<xx>.json``
(a repository's shard: :func:`shard_of`) under each shard's lock (same durable replace as every
data file) once it is older than ``INDEX_ACTIVITY_FLUSH_SECONDS``, by the next request that
records something, and at exit. So counts are batched: a worker that is killed loses at most that
many seconds of counts, never other data, and readers in other workers see a pull after at most
that delay (plus up to ``SHARDS_RECHECK_SECONDS``). Counts are for the web pages and search ties,
not for billing.

    {"alice/app": {"pulls": 12, "pushes": 3, "last_pull": "...", "last_push": "...",
                   "last_push_by": "alice"}}

Shards, so that the cost of a flush and of reading other workers' flushes is that of the
repositories touched, not of all of them: one ``db/activity.json`` was 14 MB at 100,000
repositories, parsed by every worker after every flush (50 MiB each time) and rewritten by every
flush. A worker keeps what ranking and the home page need (each repository's latest activity,
the latest pushes of each shard), never a shard's parse; a data dir with the single file of
earlier versions is split into shards when the index starts.
"""
from __future__ import annotations

import atexit
import contextlib
import heapq
import logging
import math
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .store import Store
from .store.errors import StoreError
from .store.files import DataFile, FileVersion, fsync_dir

log = logging.getLogger(__name__)

LEGACY_FILE = "activity.json"  # before shards: every repository's counts in one file
SHARDS = 16
TABLE = "repositories"
_FIELDS = ("pulls", "pushes")
# The latest pushes kept per shard for the home page (which shows the first few its viewer may
# read); going past them reads that shard again.
LATEST_PUSHES_KEPT = 64
# Other workers' flushes come every INDEX_ACTIVITY_FLUSH_SECONDS (10 s): looking at the 16 shards
# (a stat and a read each) more often than this tells nothing new, and was over a quarter of a search.
SHARDS_RECHECK_SECONDS = 1.0


def shard_of(repository: str) -> str:
    """The shard holding ``ns/repo``'s counts: ``00`` to ``0f``."""
    return f"{zlib.crc32(repository.encode()) % SHARDS:02x}"


def _flush_at_exit(ref: weakref.ref[Activity]) -> None:
    found = ref()
    if found is not None:
        found.wait_for_flush()
        found.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _latest(stats: Mapping[str, Any]) -> float | None:
    """The time of a repository's latest pull or push, in seconds since 1970."""
    latest = max(stats.get("last_pull") or "", stats.get("last_push") or "")
    if latest:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(latest).timestamp()
    return None


def _combined(stored: Mapping[str, Any], counts: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` with ``counts`` added: the counters it has summed, its times and names winning."""
    entry = dict(stored)
    for name in _FIELDS:
        if name in counts:
            entry[name] = entry.get(name, 0) + counts[name]
    entry.update({k: v for k, v in counts.items() if k not in _FIELDS})
    return entry


def _merged(stored: Mapping[str, Any], pending: Mapping[str, Any]) -> dict[str, Any]:
    """Flushed counts with pending ones added, both counters always present (what ``of`` answers)."""
    entry = dict(stored)
    for name in _FIELDS:
        entry.setdefault(name, 0)
    return _combined(entry, pending)


def _add_into(table: dict[str, Any], repository: str, counts: Mapping[str, Any]) -> None:
    table[repository] = _combined(table.get(repository, {}), counts)


@dataclass
class _Shard:
    """What this worker keeps of one version of one shard."""

    version: FileVersion | None = None
    repositories: list[str] = field(default_factory=list)   # its keys in the merged recency
    latest_pushes: list[tuple[str, str]] = field(default_factory=list)  # (last push, ns/repo), latest first
    complete: bool = True  # latest_pushes holds every pushed repository of the shard


class Activity:
    """This worker's pending counts, and the merged view of every worker's flushed ones."""

    def __init__(self, store: Store, flush_seconds: float,
                 recheck_seconds: float = SHARDS_RECHECK_SECONDS) -> None:
        self._store = store
        self._folder = store.activity_dir
        self._files = {shard: DataFile(self._folder / f"{shard}.json")
                       for shard in (f"{n:02x}" for n in range(SHARDS))}
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._since = time.monotonic()
        self._changes = 0  # counts every _add
        self._applied = -1  # the value of _changes when the pending times were last laid over
        self._view_lock = threading.Lock()
        # Held while a shard's parse exists (2.8 MiB of objects at 100,000 repositories): a flush
        # and a refresh in two threads each parsing would raise the peak of the small-object heap,
        # and CPython keeps the arenas of a peak (bench/README.md, "Why a worker passed 100 MiB").
        self._parsing = threading.Lock()
        self._shards: dict[str, _Shard] = {shard: _Shard() for shard in self._files}
        self._recency: dict[str, float] = {}  # ns/repo -> latest pull or push, flushed or pending
        self._recheck_seconds = recheck_seconds
        self._checked_at = -math.inf  # time.monotonic() of the last look at every shard
        self._flusher: threading.Thread | None = None
        ref = weakref.ref(self)
        atexit.register(_flush_at_exit, ref)

    # -- counting ------------------------------------------------------------------------------
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
        """Merge the pending counts into their shards (a failure keeps a shard's for the next try)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._since = time.monotonic()
        by_shard: dict[str, dict[str, dict[str, Any]]] = {}
        for repository, counts in pending.items():
            by_shard.setdefault(shard_of(repository), {})[repository] = counts
        for shard, counts_of in sorted(by_shard.items()):
            datafile = self._files[shard]
            try:
                with self._parsing, self._store.writing(), datafile.locked():
                    data = datafile.read_private()
                    table = data.setdefault(TABLE, {})
                    for repository, counts in counts_of.items():
                        _add_into(table, repository, counts)
                    datafile.write(data, retain=False)  # readers keep what they derive, not this
                    del data, table  # before the next shard is parsed
                self._checked_at = -math.inf  # this worker's own write shows at once
            except (StoreError, OSError) as exc:
                log.warning("could not save pull/push counts (kept for the next try): %s", exc)
                self._keep_pending(counts_of)

    def _keep_pending(self, counts_of: Mapping[str, Mapping[str, Any]]) -> None:
        with self._lock:
            for repository, counts in counts_of.items():
                entry = self._pending.setdefault(repository, {})
                for name in _FIELDS:
                    if name in counts:
                        entry[name] = entry.get(name, 0) + counts[name]
                entry.update({k: v for k, v in counts.items() if k not in _FIELDS and k not in entry})

    def forget(self, repository: str) -> None:
        """Drop a deleted repository's counts (a new repository of that name starts at zero)."""
        with self._lock:
            self._pending.pop(repository, None)
        with self._view_lock:
            self._recency.pop(repository, None)
        datafile = self._files[shard_of(repository)]
        if not datafile.path.exists():
            return
        with self._parsing, self._store.writing(), datafile.locked():
            data = datafile.read_private()
            if data.get(TABLE, {}).pop(repository, None) is not None:
                datafile.write(data, retain=False)
                self._checked_at = -math.inf

    # -- the data dir of an earlier version ---------------------------------------------------------
    def split_legacy_file(self) -> int:
        """Move the counts of ``db/activity.json`` (before shards) into the shards; returns how
        many repositories moved. Run at start-up, before any worker counts.

        Each shard gets the file's entries (set, not added: a split cut short and run again
        gives the same shards); the file goes once every shard holds its part.
        """
        legacy = DataFile(Path(self._store.db_dir) / LEGACY_FILE)
        if not legacy.path.exists():
            return 0
        with self._store.writing(), legacy.locked():
            table = legacy.read_private().get(TABLE, {})
            by_shard: dict[str, dict[str, Any]] = {}
            for repository, stats in table.items():
                by_shard.setdefault(shard_of(repository), {})[repository] = stats
            for shard, entries in sorted(by_shard.items()):
                datafile = self._files[shard]
                with datafile.locked():
                    data = datafile.read_private()
                    data.setdefault(TABLE, {}).update(entries)
                    datafile.write(data, retain=False)
            legacy.path.unlink(missing_ok=True)
            fsync_dir(legacy.path.parent)  # a file that came back after a crash would be split again
        log.info("moved the pull/push counts of %d repositories into %s", len(table), self._folder)
        return len(table)

    # -- reading -------------------------------------------------------------------------------
    def of(self, repository: str) -> dict[str, Any]:
        """Flushed counts plus this worker's pending ones for one repository."""
        try:
            with self._parsing:
                stored = self._files[shard_of(repository)].read_shared(retain=False).get(TABLE, {}).get(repository)
        except (StoreError, OSError) as exc:
            log.warning("could not read pull/push counts: %s", exc)
            stored = None
        with self._lock:
            pending = self._pending.get(repository)
            if pending is None:
                return dict(stored) if stored is not None else {"pulls": 0, "pushes": 0}
            return _merged(stored or {}, pending)

    def _refresh(self) -> None:
        """Bring :attr:`_recency` up to date: the shards that changed since the last look (any
        worker's flush) are read again, their parses dropped right after, and this worker's
        pending pulls and pushes laid over them."""
        with self._view_lock:
            recency = self._recency
            changed_any = False
            moment = time.monotonic()
            due = moment - self._checked_at >= self._recheck_seconds
            if due:
                self._checked_at = moment
            for shard, datafile in self._files.items() if due else ():
                if not self._parsing.acquire(blocking=False):
                    # A flush of this worker is under way: its shards are looked at by the next
                    # query (a ranking tie-break a moment old), not parsed alongside its parse.
                    self._checked_at = -math.inf
                    break
                try:
                    changed = self._changed_shard(shard, datafile)
                finally:
                    self._parsing.release()
                if changed:
                    changed_any = True
            with self._lock:
                if not changed_any and self._applied == self._changes:
                    return
                pending = [(repository, _latest(counts)) for repository, counts in self._pending.items()]
                self._applied = self._changes
            for repository, latest in pending:
                if latest is not None:
                    recency[repository] = max(latest, recency.get(repository, latest))

    def _changed_shard(self, shard: str, datafile: DataFile) -> bool:
        """Re-read one shard into :attr:`_recency` if it changed (with the view and parse locks
        held); True if it had. Its parse is gone on return."""
        known = self._shards[shard]
        try:
            changed = datafile.read_if_changed(known.version)
        except (StoreError, OSError) as exc:
            log.warning("could not read pull/push counts: %s", exc)
            return False
        if changed is None:
            return False
        version, data = changed
        fresh = _Shard(version)
        times: dict[str, float] = {}
        pushes: list[tuple[str, str]] = []
        for repository, stats in data.get(TABLE, {}).items():
            # A copy: a string of the parse kept alive would keep the parse's memory
            # pages (one in every few thousand objects is enough) after it is dropped;
            # interned: the search index holds the same name (index.search_index).
            name = sys.intern(repository.encode().decode())
            latest = _latest(stats)
            if latest is not None:
                times[name] = latest
            if stats.get("last_push"):
                pushes.append((stats["last_push"], name))
        fresh.repositories = list(times)
        fresh.latest_pushes = [(pushed.encode().decode(), name)
                               for pushed, name in heapq.nlargest(LATEST_PUSHES_KEPT, pushes)]
        fresh.complete = len(pushes) <= LATEST_PUSHES_KEPT
        # One C-level update, so a query ranking meanwhile never sees the shard half-done.
        self._recency.update(times)
        for gone in set(known.repositories).difference(times):
            self._recency.pop(gone, None)
        self._shards[shard] = fresh
        return True

    def recency(self) -> Mapping[str, float]:
        """``ns/repo`` -> time of its latest pull or push (seconds since 1970), for ranking:
        flushed by any worker (each shard re-read only when it changed) or pending here.

        One dict, kept up to date in place (each change is a single C-level update, so a query
        ranking with it meanwhile sees each repository either before or after)."""
        self._refresh()
        return self._recency

    def latest_pushes(self) -> Iterator[tuple[str, str]]:
        """(time of the last push, ``ns/repo``) of every pushed repository, the latest first
        (flushed by any worker, with this worker's pending pushes): what the home page lists."""
        self._refresh()
        with self._lock:
            pending = {repository: counts["last_push"] for repository, counts in self._pending.items()
                       if counts.get("last_push")}
        mine = sorted(((pushed, repository) for repository, pushed in pending.items()), reverse=True)
        with self._view_lock:
            shards = list(self._shards.items())
        yield from heapq.merge(mine, *(self._shard_pushes(shard, known, pending) for shard, known in shards),
                               reverse=True)

    def _shard_pushes(self, shard: str, known: _Shard, pending: Collection[str]) -> Iterator[tuple[str, str]]:
        """One shard's flushed pushes, latest first, but those ``pending`` (a later push is)."""
        yield from ((pushed, repository) for pushed, repository in known.latest_pushes
                    if repository not in pending)
        if known.complete:
            return
        # Past the kept ones (rare: a home page whose viewer may read none of the latest pushes).
        last = known.latest_pushes[-1]
        with self._parsing:
            data = self._files[shard].read_shared(retain=False)
            older = sorted(((stats["last_push"], repository) for repository, stats in data.get(TABLE, {}).items()
                            if stats.get("last_push") and repository not in pending
                            and (stats["last_push"], repository) < last), reverse=True)
            del data
        yield from older
