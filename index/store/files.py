"""Durable JSON files: atomic replace with fsync, a lock across threads and processes, a read cache.

TinyDB's stock JSONStorage overwrites its file in place and is not safe across processes. Here a
write goes to a temp file in the same folder, is fsynced, ``os.replace``d over the old file and the
folder is fsynced, so a file is always the old or the new version, even after ``kill -9``.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT_SECONDS = 30.0
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class StoreError(Exception):
    """Base of everything the store raises."""


class StorageFailure(StoreError):
    """The data dir could not be read or written; nothing was changed."""

    def __init__(self, message: str, *, no_space: bool = False) -> None:
        super().__init__(message)
        self.no_space = no_space


class CorruptDataFile(StoreError):
    """A data file exists but does not parse: never treat it as empty."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"data file {path} is damaged ({reason}); stop the index and restore the data "
            f"directory from a backup (see README, 'Backups')")
        self.path = path


def _failure(action: str, path: Path, exc: OSError) -> StorageFailure:
    no_space = exc.errno in _NO_SPACE
    reason = "the disk is full" if no_space else (exc.strerror or str(exc))
    return StorageFailure(f"could not {action} {path.name}: {reason}", no_space=no_space)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old or the new bytes, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=path.name + TEMP_MARK, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_dir(path.parent)


class DataFile:
    """One JSON document on disk, shared by every thread of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(str(path) + LOCK_SUFFIX, thread_local=False)
        # (inode, size, mtime_ns) -> parsed content; replaced as a whole, never mutated.
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file for a whole read-modify-write, against threads and other processes."""
        with self._thread_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file_lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
            except Timeout:
                raise StorageFailure(f"{self.path.name} is locked by another writer; try again") from None
            except OSError as exc:
                raise _failure("lock", self.path, exc) from None
            try:
                yield
            finally:
                self._file_lock.release()

    def read_shared(self) -> dict[str, Any]:
        """The parsed file, reused while its inode, size and mtime are unchanged. Do not mutate."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise _failure("read", self.path, exc) from None
        cached = self._cache
        if cached is not None and cached[0] == (info.st_ino, info.st_size, info.st_mtime_ns):
            return cached[1]
        return self._load()

    def read_private(self) -> dict[str, Any]:
        """A freshly parsed copy that the caller may change (used inside ``locked``)."""
        return self._load(keep=False)

    def _load(self, keep: bool = True) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise _failure("read", self.path, exc) from None
        data = self._parse(raw)
        if keep:
            self._cache = ((info.st_ino, info.st_size, info.st_mtime_ns), data)
        return data

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CorruptDataFile(self.path, f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptDataFile(self.path, "top level is not a JSON object")
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data``; durable on return. Call inside ``locked``."""
        payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
        try:
            atomic_write_bytes(self.path, payload)
        except OSError as exc:
            self._cache = None
            raise _failure("write", self.path, exc) from None
        try:
            info = os.stat(self.path)
        except OSError:
            self._cache = None
            return
        self._cache = ((info.st_ino, info.st_size, info.st_mtime_ns), data)

    def remove(self) -> None:
        """Delete the file (inside ``locked``); durable on return."""
        try:
            os.unlink(self.path)
            fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _failure("remove", self.path, exc) from None
        self._cache = None

    def check(self) -> None:
        """Parse the file now: raises CorruptDataFile for a damaged one."""
        self._load()


def remove_stale_temp_files(folder: Path, datafile_for) -> int:
    """Delete temp files left by a writer killed mid-write; each under its target's lock."""
    removed = 0
    if not folder.exists():
        return 0
    for temp in folder.rglob(f"*{TEMP_MARK}*"):
        target = temp.with_name(temp.name.split(TEMP_MARK, 1)[0])
        datafile = datafile_for(target)
        with datafile.locked():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    if removed:
        log.info("removed %d temp file(s) left by an interrupted write", removed)
    return removed
