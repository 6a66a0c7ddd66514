"""Durable JSON files: atomic replace with fsync, locks across threads and processes, a read cache.

TinyDB's stock JSONStorage overwrites its file in place and is not safe across processes. Here a
write goes to a temp file in the same folder, is fsynced, ``os.replace``d over the old file and the
folder is fsynced, so a file is always the old or the new version, even after ``kill -9``.

Locks (all ``flock``: released by the kernel when a process dies, so a crash never leaves one held):

* each data file has ``<file>.lock``, held (with a thread lock) for a whole read-modify-write;
* ``<data dir>/.gate.lock`` is held *shared* by every write and *exclusively* by a backup, so a
  backup sees all files at one moment without holding thousands of per-file locks;
* ``<data dir>/.in-use.lock`` is held shared by every process serving the data dir, for its whole
  life, so ``restore`` can tell that the index is still running.

A data file may have a **journal** beside it, ``<file>.journal``: small changes (a push announcing
new image ids) are appended there as JSON merge patches instead of rewriting the whole file, so
they cost one ``write`` and one ``fdatasync``, not O(file). The invariants:

* Line 1 is a header ``{"base":"<stamp>","id":"<random>"}``: the ``_write`` stamp of the base
  file the journal applies to. Every other line is ``{"t": table, "k": key, "p": patch}``: RFC 7386
  merge patch ``p`` applied to record ``k`` of table ``t`` (objects merge recursively, ``null``
  removes a key, anything else replaces; ``p`` null removes the record). Lines end with ``\n``.
* What a file holds is its base with the journal's lines applied in order, but only if the header
  names the base's current stamp. Rewriting the base (any :meth:`DataFile.write`, and the
  compaction that folds a journal into its base once it grows past :func:`compaction_bound`)
  gives the base a new stamp, which makes the old journal *stale*: ignored by readers and removed
  by the writer right after (or by the next one, if that writer was killed in between). So a
  journal is never applied twice nor on top of a base that already holds it.
* A journal is created whole (header and first line) by the atomic temp-file-and-rename, then
  only appended to, under the file's lock, one ``os.write`` per line (``O_APPEND``) followed by
  ``fdatasync`` before the writer answers. A last line without its ``\n`` or that does not parse
  was never acknowledged (a writer killed mid-append, or one still appending): readers ignore it
  and the next appender truncates it. A bad line before the last is a :class:`CorruptDataFile`.
* Readers open the journal before the base: a base read after the journal is the one the journal
  names or a newer one that already holds it, never an older one.
"""
from __future__ import annotations

import abc
import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import CorruptDataFile, StorageFailure, failure

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"
LOCK_SUFFIX = ".lock"
GATE_LOCK = ".gate.lock"
IN_USE_LOCK = ".in-use.lock"
LOCK_TIMEOUT_SECONDS = 30.0
# A lock held by another process is tried again every 2 ms: a write that waits behind another (a
# few ms) should not wait 50, and a retry costs a waiter little CPU.
LOCK_POLL_SECONDS = 0.002

# Every file we write starts with this key and a random value that is new on every write. Inode
# numbers are reused once a replaced file is freed, and mtime has a coarse clock, so (inode, size,
# mtime_ns) alone can repeat for two versions written in quick succession; the stamp cannot.
STAMP_KEY = "_write"
_STAMP_HEX = 16
_PREFIX_LEN = len(json.dumps({STAMP_KEY: "0" * _STAMP_HEX}, separators=(",", ":"))) - 1

# Tables of more records than this are encoded this many records at a time (encode_document).
ENCODE_CHUNK = 256
_compact = json.JSONEncoder(separators=(",", ":")).encode


def encode_document(document: dict[str, Any]) -> bytes:
    """``json.dumps(document, separators=(",", ":"))`` in UTF-8, the same bytes, but with large
    tables encoded a few hundred records at a time.

    json.dumps of a whole pull/push shard (6,250 records, 0.9 MB, at 100,000 repositories) holds
    about 4 MiB of small strings at once before it joins them; CPython keeps the arenas of such
    a peak for good once anything long-lived lands among them (bench/README.md, "Why a worker
    passed 100 MiB"). A chunk at a time holds a few KiB of them.
    """
    if not any(isinstance(value, dict) and len(value) > ENCODE_CHUNK for value in document.values()) or \
            not all(isinstance(key, str) for key in document):
        return _compact(document).encode("utf-8")
    pieces: list[bytes] = []
    for key, value in document.items():
        pieces += (b"," if pieces else b"{", _compact(key).encode("utf-8"), b":")
        if isinstance(value, dict) and len(value) > ENCODE_CHUNK:
            records = iter(value.items())
            pieces.append(b"{")
            first = True
            while chunk := dict(itertools.islice(records, ENCODE_CHUNK)):
                if not first:
                    pieces.append(b",")
                pieces.append(_compact(chunk)[1:-1].encode("utf-8"))  # without its braces
                first = False
            pieces.append(b"}")
        else:
            pieces.append(_compact(value).encode("utf-8"))
    pieces.append(b"}")
    return b"".join(pieces)


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderSyncs:
    """Group commit of folder entries: one ``fsync`` of a folder serves every writer that renamed
    a file into it before that ``fsync`` started.

    Concurrent writers of new images each rename a file into ``namespaces/`` and must then make
    the rename durable. Alone, each would fsync the folder (a journal commit each); here the first
    becomes the leader and syncs, and those who renamed meanwhile wait for the next sync by one
    leader and share it. A writer returns only after an fsync that started after its own rename
    has finished, so each acknowledged write is as durable as with its own fsync. Within one
    process (each server worker has its own); the file's own data is still fsynced per file.
    """

    def __init__(self) -> None:
        self._folders: dict[Path, list[int]] = {}  # folder -> [renames requested, renames synced, syncing]
        self._condition = threading.Condition()

    def sync(self, folder: Path) -> None:
        with self._condition:
            state = self._folders.setdefault(folder, [0, 0, 0])
            state[0] += 1
            ticket = state[0]
            while state[1] < ticket and state[2]:
                self._condition.wait()
            if state[1] >= ticket:
                return  # a sync that started after this rename has finished
            state[2] = 1
            covered = state[0]  # every rename requested so far happened before this sync starts
        synced = False
        try:
            fsync_dir(folder)
            synced = True
        finally:
            with self._condition:
                state[2] = 0
                if synced:  # after an error only the leader raises; the others sync themselves
                    state[1] = max(state[1], covered)
                self._condition.notify_all()

    def after_fork(self) -> None:
        self._folders = {}
        self._condition = threading.Condition()


FOLDER_SYNCS = FolderSyncs()
os.register_at_fork(after_in_child=FOLDER_SYNCS.after_fork)


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) durably: a new directory entry is fsynced in its parent."""
    if folder.is_dir():
        return
    ensure_dir(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    fsync_dir(folder.parent)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[int]:
    """A descriptor of a temp file beside ``path``, written by the caller.

    On a clean exit the temp file is fsynced, renamed over ``path`` and the folder fsynced, so
    readers see the old or the new file, never a mix; on an error it is removed.
    """
    ensure_dir(path.parent)
    fd, temp_name = tempfile.mkstemp(prefix=path.name + TEMP_MARK, dir=path.parent)
    try:
        try:
            yield fd
            os.fsync(fd)  # ENOSPC and EIO of delayed writes surface here at the latest
        finally:
            os.close(fd)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    # Without this the rename itself may be lost on power failure (the old version comes back).
    FOLDER_SYNCS.sync(path.parent)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old or the new bytes, never a mix."""
    with atomic_file(path) as fd:
        _write_all(fd, payload)


def _write_all(fd: int, payload: bytes) -> None:
    """All of ``payload`` to ``fd`` (os.write may write less than asked)."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


class LockBusy(StorageFailure):
    """A lock stayed held by another writer (or a backup) for the whole timeout."""


# Waiting for a lock: every LOCK_POLL_SECONDS at first (a write queued behind another waits a few
# ms), then every LOCK_SLOW_POLL_SECONDS once it has waited LOCK_FAST_POLLING_SECONDS (a backup).
LOCK_FAST_POLLING_SECONDS = 0.25
LOCK_SLOW_POLL_SECONDS = 0.02


@contextlib.contextmanager
def flocked(path: Path, exclusive: bool, timeout: float = LOCK_TIMEOUT_SECONDS,
            what: str = "the data directory", busy: str | None = None) -> Iterator[None]:
    """Hold a shared or exclusive ``flock`` on ``path`` through a descriptor of its own.

    Closing the descriptor releases the lock, and so does the kernel when the process dies. Two
    descriptors conflict even within one process, so a caller that may re-enter must count its
    own depth (see :meth:`DataFile.locked`). ``timeout=0`` tries once. Raises :class:`LockBusy`
    (``busy`` or a message naming ``what``) when the lock stays held, StorageFailure when the
    lock file cannot be opened. (filelock does the same for about 80 µs a lock against 5 here,
    a tenth of a write request.)
    """
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # its folder is made at the first lock only
            ensure_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise failure("lock", path, exc) from None
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        first_refusal: float | None = None
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if first_refusal is None:
                    first_refusal = time.monotonic()
                waited = time.monotonic() - first_refusal
                if waited >= timeout:
                    raise LockBusy(busy or f"{what} is busy (a backup or another writer); try again") from None
                time.sleep(LOCK_POLL_SECONDS if waited < LOCK_FAST_POLLING_SECONDS else LOCK_SLOW_POLL_SECONDS)
        yield
    finally:
        os.close(fd)


class InUseMark:
    """A shared flock on ``<data dir>/.in-use.lock`` held for this process's life (see module doc)."""

    def __init__(self, data_dir: Path, timeout: float = 5.0) -> None:
        self._fd: int | None = None
        path = data_dir / IN_USE_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("cannot mark %s as in use (%s); restore will not notice this process",
                        data_dir, exc.strerror)
            return  # a read-only data dir can still be served for reads
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StorageFailure(f"{data_dir} is being restored from a backup; "
                                         f"start the index when the restore has finished") from None
                time.sleep(0.05)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


@contextlib.contextmanager
def exclusive_use(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` so that no index process uses it; StorageFailure if one does."""
    try:
        ensure_dir(data_dir)
        fd = os.open(data_dir / IN_USE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise failure("lock", data_dir / IN_USE_LOCK, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageFailure(f"the index is running on {data_dir}: stop every index process "
                                 f"(gunicorn workers included) first") from None
        yield
    finally:
        os.close(fd)


class ForkSafe(abc.ABC):
    """Objects holding thread locks rebuild them in a forked child (e.g. ``gunicorn --preload``).

    A thread lock held by another thread at fork time stays held forever in the child; the child
    gets fresh ones before it runs on.
    """

    _instances: weakref.WeakSet[ForkSafe] = weakref.WeakSet()

    def __init__(self) -> None:
        self._new_locks()
        ForkSafe._instances.add(self)

    @abc.abstractmethod
    def _new_locks(self) -> None:
        """Create this object's locks (at construction, and again in a forked child)."""

    @classmethod
    def _after_fork_in_child(cls) -> None:
        for instance in list(cls._instances):
            instance._new_locks()


os.register_at_fork(after_in_child=ForkSafe._after_fork_in_child)


JOURNAL_SUFFIX = ".journal"
# A journal is folded into its base once it holds more than half the base's size, but at least
# MIN and at most MAX bytes: the O(file) rewrite is paid once per hundreds of appends, and a
# reader that parses the file cold applies at most MAX bytes of patches on top of the base.
JOURNAL_MIN_COMPACT_BYTES = 32 << 10
JOURNAL_MAX_COMPACT_BYTES = 256 << 10
_HEADER_HEX = 16


def compaction_bound(base_size: int) -> int:
    """Journal bytes past which the writer folds the journal into its base."""
    return min(max(JOURNAL_MIN_COMPACT_BYTES, base_size // 2), JOURNAL_MAX_COMPACT_BYTES)


def journal_path(path: Path) -> Path:
    """The journal of the data file ``path`` (never ends in ``.json``: not a data file itself)."""
    return path.with_name(path.name + JOURNAL_SUFFIX)


def merge_patch(target: Any, patch: Any, fresh: set[int] | None = None) -> Any:
    """RFC 7386: ``patch`` applied to ``target``. Without ``fresh`` ``target`` is changed in place;
    with it, ``target`` stays as it was and only the objects on the patched paths are copied
    (``fresh`` collects the ids of the copies, which later patches of a batch may change)."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any]
    if isinstance(target, dict):
        result = _own(target, fresh)
    else:
        result = {}
        if fresh is not None:
            fresh.add(id(result))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, fresh)
    return result


def _stamp_of(prefix: bytes) -> str:
    """The write stamp in a base file's first bytes; "" for a file written without one."""
    head = b'{"' + STAMP_KEY.encode() + b'":"'
    if len(prefix) == _PREFIX_LEN and prefix.startswith(head):
        return prefix[len(head):len(head) + _STAMP_HEX].decode("ascii", "replace")
    return ""


class _Journal:
    """What a reader applied of one journal: its inode and header, the end of the last whole line
    applied, and the size it saw (more than ``end``: a torn or still growing last line)."""

    __slots__ = ("ino", "header", "end", "size")

    def __init__(self, ino: int, header: bytes, end: int, size: int) -> None:
        self.ino, self.header, self.end, self.size = ino, header, end, size


class _View:
    """A read of base + journal: the base's version, the journal applied (None: none applies),
    and the content, which is shared (must not be changed) when it came from the cache."""

    __slots__ = ("base", "journal", "data", "base_size")

    def __init__(self, base: FileVersion, journal: _Journal | None, data: dict[str, Any], base_size: int) -> None:
        self.base, self.journal, self.data, self.base_size = base, journal, data, base_size


# A file's version: (inode, size, mtime_ns) and its first bytes (the write stamp).
FileVersion = tuple[tuple[int, int, int], bytes]
MISSING: FileVersion = ((0, 0, 0), b"")

# What the data files of one Store may keep parsed in a worker, counted in bytes of JSON on disk
# (a parse takes about 3.5 times that): the most recently read files; others are parsed again.
KEPT_PARSES_BYTES = 4 << 20


class KeptParses(ForkSafe):
    """The DataFiles that keep their parse: the most recently used, up to ``limit`` bytes of file.

    Without a bound, a worker that had read every namespace file once (a pass over all
    repositories, or long enough serving pulls) kept them all parsed: 3.5 times the data.
    The most recently used file is always kept, however large.
    """

    def __init__(self, limit: int = KEPT_PARSES_BYTES) -> None:
        self.limit = limit
        self._kept: OrderedDict[DataFile, int] = OrderedDict()  # oldest first -> bytes on disk
        self._bytes = 0
        super().__init__()

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def used(self, datafile: DataFile, size: int) -> None:
        """``datafile`` keeps a parse of a ``size``-byte file and was just read or written."""
        with self._lock:
            self._bytes += size - self._kept.pop(datafile, 0)
            self._kept[datafile] = size
            while self._bytes > self.limit and len(self._kept) > 1:
                oldest, dropped = self._kept.popitem(last=False)
                self._bytes -= dropped
                oldest.drop_parse()

    def kept_bytes(self) -> int:
        return self._bytes


class DataFile(ForkSafe):
    """One JSON document on disk (a base file and maybe its journal), shared by every thread of
    this process.

    With ``kept``, the file's parse stays only while ``kept`` has room for it.
    """

    def __init__(self, path: Path, kept: KeptParses | None = None) -> None:
        self.path = path
        self.journal_path = journal_path(path)
        self._kept = kept
        # The last read of base + journal; replaced whole, its content never mutated.
        self._cache: _View | None = None
        super().__init__()

    def _new_locks(self) -> None:
        self._thread_lock = threading.RLock()
        self._depth = 0  # how deep the thread holding _thread_lock is in locked()

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
        """Hold the file for a whole read-modify-write, against threads and other processes.

        Re-entrant within a thread: only the outermost call takes the ``flock``."""
        busy = f"{self.path.name} is locked by another writer; try again"
        if not self._thread_lock.acquire(timeout=timeout):
            raise LockBusy(busy)
        try:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with flocked(Path(str(self.path) + LOCK_SUFFIX), exclusive=True, timeout=timeout, busy=busy):
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
        finally:
            self._thread_lock.release()

    # -- reading ----------------------------------------------------------------------------------
    def read_shared(self, retain: bool = True) -> dict[str, Any]:
        """The parsed file, reused while it is the same version. Callers must not mutate it.

        Lines appended to the journal since the last read are applied to the kept parse (copying
        only what they touch). ``retain=False`` uses the cached parse if it is current but does
        not keep a new one: at 100,000 repositories, parses kept for every file were 3.5 times
        the data in each worker.
        """
        cached = self._cache
        view = self._read(cached)
        if view is not cached and (retain or (cached is not None and view.base == cached.base)):
            self._cache = view
        if self._kept is not None and self._cache is view:
            self._kept.used(self, _bytes_of(view))
        return view.data

    def read_private(self) -> dict[str, Any]:
        """A freshly parsed copy (base + journal) that the caller may change (used inside ``locked``)."""
        return self._read(None).data

    def read_if_changed(self, since: FileVersion | None) -> tuple[FileVersion, dict[str, Any]] | None:
        """The parsed file and its version, or None while it is still at version ``since``.

        For readers that keep something derived from the file instead of its parse (nothing is
        kept here). A missing file reads as ``{}`` at version :data:`MISSING`.
        """
        version = self._version()
        if since is not None and since == version:
            return None
        if version == MISSING:
            return None if since == MISSING else (MISSING, {})
        # The version was taken first: what is read now is at least that new.
        return version, self._read(None).data

    def _version(self) -> FileVersion:
        """The base's version, with the journal's (inode, size) after its first bytes."""
        journal = stat_or_none(self.journal_path, self.journal_path.name)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return MISSING
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        try:
            key, prefix = _base_version(fd)
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        finally:
            os.close(fd)
        if journal is not None:
            prefix += b"|%d:%d" % (journal.st_ino, journal.st_size)
        return key, prefix

    def _read(self, cached: _View | None) -> _View:
        """Base + journal as they are now; reuses ``cached`` while its base is current.

        Plain descriptors, not file objects: this runs several times in every request."""
        if cached is not None and self._still(cached):
            return cached
        try:
            # The journal first: the base read after it is the one it names or a newer one.
            journal = _open_or_none(self.journal_path)
        except OSError as exc:
            raise failure("read", self.journal_path, exc) from None
        try:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return _View(MISSING, None, {}, 0)  # a journal without its base holds nothing
            try:
                base = _base_version(fd)
                if cached is not None and cached.base == base:
                    view, shared = cached, True
                else:
                    (_, size, _), prefix = base
                    raw = prefix + _read_rest(fd, size - len(prefix))
                    view, shared = _View(base, None, self._parse(raw), size), False
            finally:
                os.close(fd)
            if journal is None:
                if view.journal is not None:
                    return self._read(None)  # the journal applied went without a new base: not ours
                return view
            return self._with_journal(view, journal, shared)
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        finally:
            if journal is not None:
                os.close(journal)

    def _still(self, cached: _View) -> bool:
        """Whether ``cached`` is current: the journal's stat (taken first, so nothing acknowledged
        before this read is missed) shows nothing new and the base is the same version. Fewer
        system calls than opening the journal; anything else takes the full path."""
        try:
            journal: os.stat_result | None = os.stat(self.journal_path)
        except FileNotFoundError:
            journal = None
        except OSError:
            return False
        known = cached.journal
        if journal is None:
            if known is not None:
                return False
        elif known is None or known.ino != journal.st_ino or not known.end == known.size == journal.st_size:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            return _base_version(fd) == cached.base
        except OSError:
            return False
        finally:
            os.close(fd)

    def _with_journal(self, view: _View, fd: int, shared: bool) -> _View:
        """``view`` with what the open journal ``fd`` adds to it (copied if ``shared``)."""
        info = os.fstat(fd)
        size, ino = info.st_size, info.st_ino
        known = view.journal
        if known is not None and known.ino == ino:
            if known.end == known.size == size:
                return view  # nothing appended since
            if size < known.end:
                return self._read(None)  # cut shorter than what was applied: not by us
            header, start = known.header, known.end
            chunk = _read_rest(fd, size - start, start)
        else:
            raw = _read_rest(fd, size)
            start = raw.find(b"\n") + 1
            header = raw[:start] if start else raw
            if not self._names_base(header, view.base[1]):
                # Stale: its base was rewritten since, and holds what it held.
                return self._read(None) if known is not None else view
            if known is not None:
                return self._read(None)  # another journal than the one applied: start afresh
            chunk = raw[start:]
        data, used = self._apply_lines(view.data, chunk, set() if shared else None)
        return _View(view.base, _Journal(ino, header, start + used, start + len(chunk)), data, view.base_size)

    def _apply_lines(self, data: dict[str, Any], chunk: bytes,
                     fresh: set[int] | None) -> tuple[dict[str, Any], int]:
        """``data`` with the whole lines of ``chunk`` applied, and how many bytes those were."""
        lines = chunk.split(b"\n")
        last = len(lines) - 2  # lines[-1] follows the last newline: b"" or a line being appended
        if last >= 8:  # many lines (a cold read): one parse of them all, line by line if that fails
            try:
                entries = json.loads(b"[" + b",".join(lines[:-1]) + b"]")
            except (ValueError, RecursionError):
                entries = None
            if entries is not None and all(_is_entry(entry) for entry in entries):
                for entry in entries:
                    data = _apply_entry(data, entry["t"], entry["k"], entry["p"], fresh, self.path)
                return data, len(chunk) - len(lines[-1])
        used = 0
        for number, line in enumerate(lines[:-1]):
            try:
                entry = json.loads(line)
                if not _is_entry(entry):
                    raise TypeError("not an object with a table, a key and a patch")
                table, key, patch = entry["t"], entry["k"], entry["p"]
            except (ValueError, TypeError, RecursionError) as exc:
                if number == last and not lines[-1]:
                    break  # the last line, never acknowledged (see the module doc)
                raise CorruptDataFile(self.journal_path, f"line {number + 2} is not a journal entry: {exc}") from None
            data = _apply_entry(data, table, key, patch, fresh, self.path)
            used += len(line) + 1
        return data, used

    def _names_base(self, header: bytes, prefix: bytes) -> bool:
        """Whether the journal's ``header`` names the base whose first bytes are ``prefix``; a
        journal is created whole by a rename, so a header that does not parse is damage."""
        try:
            parsed = json.loads(header)
            if not (header.endswith(b"\n") and isinstance(parsed, dict) and isinstance(parsed["base"], str)):
                raise ValueError("not a header")
        except (ValueError, KeyError) as exc:
            raise CorruptDataFile(self.journal_path, f"its first line is not a journal header: {exc}") from None
        stamp = _stamp_of(prefix)
        return bool(stamp) and parsed["base"] == stamp

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CorruptDataFile(self.path, f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptDataFile(self.path, "top level is not a JSON object")
        data.pop(STAMP_KEY, None)
        return data

    def drop_parse(self) -> None:
        """Forget the kept parse (the next read parses the file again)."""
        self._cache = None

    def check(self) -> None:
        """Parse the file and its journal now: raises CorruptDataFile for a damaged one (the
        parse is not kept)."""
        self._read(None)

    # -- writing ----------------------------------------------------------------------------------
    def write(self, data: dict[str, Any], retain: bool = True) -> None:
        """Replace the file with ``data``; durable on return. Call inside ``locked``.

        ``data`` must hold what the journal holds (it comes from :meth:`read_private` or
        :meth:`read_shared` under the same lock): the new base makes the journal stale, and it is
        removed. ``data`` becomes the read cache (unless ``retain=False``): the caller must not
        change it afterwards.
        """
        stamped = {STAMP_KEY: secrets.token_hex(_STAMP_HEX // 2), **data}
        payload = encode_document(stamped)
        self._cache = None
        try:
            atomic_write_bytes(self.path, payload)
            info = os.stat(self.path)
            # Stale now (it names the old stamp): a kill before this unlink leaves it ignored.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal_path)
        except OSError as exc:
            raise failure("write", self.path, exc) from None
        if retain:
            self._cache = view = _View((_stat_key(info), payload[:_PREFIX_LEN]), None, data, info.st_size)
            if self._kept is not None:
                self._kept.used(self, _bytes_of(view))

    def append_patch(self, table: str, key: str, patch: dict[str, Any] | None) -> None:
        """Apply the merge ``patch`` to record ``key`` of ``table`` (None: remove the record), by
        one line appended to the journal; durable on return. Call inside ``locked``.

        Starts a journal when there is none (or only a stale one), folds the journal into the
        base once it passes :func:`compaction_bound`, and writes the whole file instead when the
        base has no write stamp (written before stamps existed) or does not exist.
        """
        view = self._read(self._cache)
        data = _apply_entry(view.data, table, key, patch, set(), self.path)
        stamp = _stamp_of(view.base[1])
        if not stamp:
            self.write(data)
            return
        line = json.dumps({"t": table, "k": key, "p": patch}, separators=(",", ":")).encode("utf-8") + b"\n"
        known = view.journal
        self._cache = None
        try:
            if known is None:
                # Created whole by a rename, so a journal never lacks its header.
                header = json.dumps({"base": stamp, "id": secrets.token_hex(_HEADER_HEX // 2)},
                                    separators=(",", ":")).encode("utf-8") + b"\n"
                atomic_write_bytes(self.journal_path, header + line)
                end = len(header) + len(line)
                journal = _Journal(os.stat(self.journal_path).st_ino, header, end, end)
            else:
                journal = self._append(known, line)
        except OSError as exc:
            raise failure("write", self.journal_path, exc) from None
        if journal.end > compaction_bound(view.base_size):
            try:
                self.write(data)
            except StorageFailure as exc:  # the patch is durable already: the next append retries
                log.warning("could not fold the journal into %s: %s", self.path, exc)
            return
        self._cache = view = _View(view.base, journal, data, view.base_size)
        if self._kept is not None:
            self._kept.used(self, _bytes_of(view))

    def _append(self, known: _Journal, line: bytes) -> _Journal:
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        try:
            info = os.fstat(fd)
            if info.st_ino != known.ino or info.st_size < known.end:
                raise CorruptDataFile(self.journal_path, "it changed while its file was locked")
            if info.st_size > known.end:
                os.ftruncate(fd, known.end)  # a last line never acknowledged (a writer was killed)
            try:
                _write_all(fd, line)  # one write: a line is small
                os.fdatasync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, known.end)  # not acknowledged: readers must not see it either
                raise
        finally:
            os.close(fd)
        end = known.end + len(line)
        return _Journal(known.ino, known.header, end, end)

    def drop_stale_journal(self) -> bool:
        """Remove the journal if it does not apply to the base (see the module doc). Call inside
        ``locked``; True when one was removed."""
        if self._read(None).journal is not None or not self.journal_path.exists():
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)
        return True


def _open_or_none(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _read_rest(fd: int, size: int, offset: int | None = None) -> bytes:
    """The ``size`` bytes of ``fd`` from ``offset`` (the current position if None), fewer at
    its end. What is appended meanwhile is left for the next read."""
    parts = []
    while size > 0:
        chunk = os.read(fd, size) if offset is None else os.pread(fd, size, offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        if offset is not None:
            offset += len(chunk)
    return b"".join(parts)


def _bytes_of(view: _View) -> int:
    return view.base_size + (view.journal.size if view.journal is not None else 0)


def _is_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("t"), str) and isinstance(entry.get("k"), str)
            and "p" in entry)


def _own(value: dict[str, Any], fresh: set[int] | None) -> dict[str, Any]:
    """``value`` itself if it may be changed (private, or copied already in this batch), else a copy."""
    if fresh is None or id(value) in fresh:
        return value
    copied = dict(value)
    fresh.add(id(copied))
    return copied


def _apply_entry(data: dict[str, Any], table: str, key: str, patch: Any,
                 fresh: set[int] | None, path: Path) -> dict[str, Any]:
    """``data`` with the merge ``patch`` applied to record ``key`` of ``table``. With ``fresh``,
    ``data`` stays as it was: objects on the path are copied (once: ``fresh`` holds the ids of
    those already copied)."""
    tables = _own(data, fresh)
    records = tables.get(table)
    if records is None:
        records = {}
        if fresh is not None:
            fresh.add(id(records))
    elif not isinstance(records, dict):
        raise CorruptDataFile(path, f"table {table!r} is not a JSON object")
    records = _own(records, fresh)
    if patch is None:
        records.pop(key, None)
    else:
        records[key] = merge_patch(records.get(key), patch, fresh)
    tables[table] = records
    return tables


def stat_or_none(path: Path, what: str) -> os.stat_result | None:
    """``os.stat``, None for a missing path; other errors are a StorageFailure naming ``what``."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageFailure(f"could not read {what}: {exc.strerror}") from None


_FRAME_BYTES = 64


def check_framing(path: str | Path) -> None:
    """The start-up check of a namespace file: one JSON object from its first to its last byte.

    Reads two small blocks instead of parsing the whole file, so a start at 100,000 repositories
    does not parse them all; it catches what damages a file in practice (empty, truncated,
    zero-filled, not an object). Anything subtler is found by the full parse at the file's first
    use, which answers 500 naming the file and never treats it as empty.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_FRAME_BYTES)
            size = os.fstat(handle.fileno()).st_size
            if size > _FRAME_BYTES:
                handle.seek(-_FRAME_BYTES, os.SEEK_END)
                tail = handle.read(_FRAME_BYTES)
            else:
                tail = head
    except FileNotFoundError:
        return
    except OSError as exc:
        raise failure("read", Path(path), exc) from None
    if not head.lstrip().startswith(b"{") or not tail.rstrip().endswith(b"}"):
        raise CorruptDataFile(Path(path), "it does not hold one whole JSON object")


def _stat_key(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _base_version(fd: int) -> FileVersion:
    """The version of the open base file: (inode, size, mtime_ns) and its first bytes (the write
    stamp), read from the current position (the start of a file just opened)."""
    return _stat_key(os.fstat(fd)), os.read(fd, _PREFIX_LEN)


def walk_files(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """Files under ``folder`` whose name is ``wanted``, folder by folder in name order.

    ``os.walk`` (scandir: no stat per file) rather than ``Path.rglob``: at 100,000 repositories
    the namespaces folder holds tens of thousands of files, and this runs at every start.
    """
    found: list[Path] = []
    for parent, folders, names in os.walk(folder):
        folders.sort()
        base = Path(parent)
        found.extend(base / name for name in sorted(names) if wanted(name))
    return found


def remove_stale_temp_files(folder: Path, datafile_for: Callable[[Path], DataFile]) -> int:
    """Delete temp files left by a writer killed mid-write; each under its target's lock.

    A writer holds that lock from creating its temp file until the rename, so a temp file seen
    under the lock belongs to nobody (another worker may be starting or writing right now).
    """
    removed = 0
    if not folder.exists():
        return 0
    for temp in walk_files(folder, lambda name: TEMP_MARK in name):
        target = temp.with_name(temp.name.split(TEMP_MARK, 1)[0])
        if target.name.endswith(JOURNAL_SUFFIX):  # a journal being created: its data file's lock
            target = target.with_name(target.name[:-len(JOURNAL_SUFFIX)])
        datafile = datafile_for(target)
        with datafile.locked():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    if removed:
        log.warning("removed %d temp file(s) left by an interrupted write", removed)
    return removed
