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
"""
from __future__ import annotations

import abc
import contextlib
import fcntl
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
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        try:
            ensure_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise failure("lock", path, exc) from None
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
    """One JSON document on disk, shared by every thread of this process.

    With ``kept``, the file's parse stays only while ``kept`` has room for it.
    """

    def __init__(self, path: Path, kept: KeptParses | None = None) -> None:
        self.path = path
        self._kept = kept
        # ((inode, size, mtime_ns), first bytes) -> parsed content; replaced whole, never mutated.
        self._cache: tuple[FileVersion, dict[str, Any]] | None = None
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

    def read_shared(self, retain: bool = True) -> dict[str, Any]:
        """The parsed file, reused while it is the same version. Callers must not mutate it.

        ``retain=False`` uses the cached parse if it is current but does not keep a new one: at
        100,000 repositories, parses kept for every file were 3.5 times the data in each worker.
        """
        try:
            with open(self.path, "rb") as handle:
                info = os.fstat(handle.fileno())
                cached = self._cache
                if cached is not None and cached[0][0] == _stat_key(info):
                    if handle.read(_PREFIX_LEN) == cached[0][1]:
                        if self._kept is not None:
                            self._kept.used(self, info.st_size)
                        return cached[1]
                    handle.seek(0)
                raw = handle.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        data = self._parse(raw)
        if retain:
            self._keep(_stat_key(info), raw[:_PREFIX_LEN], data)
        return data

    def read_if_changed(self, since: FileVersion | None) -> tuple[FileVersion, dict[str, Any]] | None:
        """The parsed file and its version, or None while it is still at version ``since``.

        For readers that keep something derived from the file instead of its parse (nothing is
        kept here). A missing file reads as ``{}`` at version :data:`MISSING`.
        """
        try:
            with open(self.path, "rb") as handle:
                key = _stat_key(os.fstat(handle.fileno()))
                if since is not None and since[0] == key and handle.read(_PREFIX_LEN) == since[1]:
                    return None
                handle.seek(0)
                raw = handle.read()
        except FileNotFoundError:
            return None if since == MISSING else (MISSING, {})
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        return (key, raw[:_PREFIX_LEN]), self._parse(raw)

    def _keep(self, key: tuple[int, int, int], prefix: bytes, data: dict[str, Any]) -> None:
        self._cache = ((key, prefix), data)
        if self._kept is not None:
            self._kept.used(self, key[1])

    def drop_parse(self) -> None:
        """Forget the kept parse (the next read parses the file again)."""
        self._cache = None

    def read_private(self) -> dict[str, Any]:
        """A freshly parsed copy that the caller may change (used inside ``locked``)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise failure("read", self.path, exc) from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CorruptDataFile(self.path, f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptDataFile(self.path, "top level is not a JSON object")
        data.pop(STAMP_KEY, None)
        return data

    def write(self, data: dict[str, Any], retain: bool = True) -> None:
        """Replace the file with ``data``; durable on return. Call inside ``locked``.

        ``data`` becomes the read cache (unless ``retain=False``): the caller must not change it
        afterwards.
        """
        stamped = {STAMP_KEY: secrets.token_hex(_STAMP_HEX // 2), **data}
        payload = json.dumps(stamped, separators=(",", ":")).encode("utf-8")
        self._cache = None
        try:
            atomic_write_bytes(self.path, payload)
            info = os.stat(self.path)
        except OSError as exc:
            raise failure("write", self.path, exc) from None
        if retain:
            self._keep(_stat_key(info), payload[:_PREFIX_LEN], data)

    def check(self) -> None:
        """Parse the file now: raises CorruptDataFile for a damaged one (the parse is not kept)."""
        self.read_shared(retain=False)


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
        datafile = datafile_for(target)
        with datafile.locked():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    if removed:
        log.warning("removed %d temp file(s) left by an interrupted write", removed)
    return removed
