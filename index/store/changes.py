"""The change log: which namespaces were written, for the readers in other processes.

One namespace name per line in ``<data dir>/db/namespaces.changes``, appended after each
namespace write (see :meth:`ChangeLog.since`); :mod:`index.search_index` follows it. Started
afresh once it passes :data:`CHANGES_MAX_BYTES`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import StorageFailure
from .files import stat_or_none

log = logging.getLogger(__name__)

CHANGES_NAME = "namespaces.changes"
CHANGES_MAX_BYTES = 1 << 20


class ChangeLog:
    """The append-only list of written namespaces at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def note(self, namespace: str) -> None:
        """Append ``namespace`` to the change log, after its file was renamed into place.

        A hint for the search index of every worker, so it re-reads one file instead of stat'ing
        every namespace file: not fsynced (after a crash every worker starts with a full scan), and
        a failure to append is only logged (readers still notice the change by a full scan; see
        :meth:`since`). Lines are a few bytes, so O_APPEND keeps concurrent ones whole.
        """
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{namespace}\n".encode())
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > CHANGES_MAX_BYTES:
                # Readers see a new (or no) file and fall back to one full scan. An append racing
                # this lands in the unlinked file, but its namespace file was renamed into place
                # before, so that full scan, which starts after this unlink, finds it.
                os.unlink(self.path)
        except FileNotFoundError:
            pass  # another writer started the log afresh at the same moment
        except OSError as exc:
            log.warning("could not append to the change log %s: %s", self.path, exc.strerror)

    def position(self) -> tuple[int, int] | None:
        """(inode, size) of the change log; None while there is none."""
        info = stat_or_none(self.path, "the change log")
        return (info.st_ino, info.st_size) if info else None

    def since(self, position: tuple[int, int]) -> tuple[tuple[int, int], set[str]] | None:
        """The namespaces written since ``position`` (from :meth:`position`) and the new
        position; None when the log was started afresh or removed since (read everything then).

        A namespace appears here only after its file holds the change, so a reader that re-reads
        the listed files is at least as new as the position it got.
        """
        inode, offset = position
        # Most queries find nothing new: one stat says so, without opening the file.
        now = self.position()
        if now is None or now[0] != inode or now[1] < offset:
            return None
        if now[1] == offset:
            return position, set()
        try:
            with open(self.path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if info.st_ino != inode or info.st_size < offset:
                    return None
                handle.seek(offset)
                data = handle.read(CHANGES_MAX_BYTES * 2)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageFailure(f"could not read the change log: {exc.strerror}") from None
        complete = data[:data.rfind(b"\n") + 1]  # a line being appended right now: next time
        names = {line.decode("utf-8", "replace") for line in complete.split(b"\n") if line}
        # Only names that can be namespace files count (the log is ours, but it is a file on disk).
        return (inode, offset + len(complete)), {name for name in names
                                                 if "/" not in name and "\x00" not in name
                                                 and not name.startswith(".")}
