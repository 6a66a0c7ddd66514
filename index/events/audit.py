"""The audit trail: one JSON object per line in ``<data dir>/audit/audit.jsonl``, append-only.

Each record is one ``write`` of a whole line to a file opened with ``O_APPEND`` and fsynced, under
a file lock that every process of the data dir shares (the same lock orders rotation). A line torn
by ``kill -9`` or a full disk is skipped by readers; the next record starts on a new line, so one
torn line never swallows the one after it.

Rotation by size: ``audit.jsonl`` becomes ``audit.jsonl.1``, ``.1`` becomes ``.2`` and so on; past
``keep`` old files the oldest goes. The files are in the data dir, so ``backup`` archives them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..store.files import ForkSafe, flocked

log = logging.getLogger(__name__)

AUDIT_FOLDER = "audit"
TRAIL_NAME = "audit.jsonl"
LOCK_NAME = "audit.jsonl.lock"
LOCK_TIMEOUT_SECONDS = 10.0
# A line longer than this is not written whole (usernames and tags are bounded far below it).
MAX_LINE_BYTES = 64 * 1024

# The events this index records (README "Audit trail" lists what each one carries).
EVENTS = (
    "login", "login_failed", "lockout", "register", "activate", "account_change", "account_delete",
    "role_change", "grant_change", "visibility_change", "repository_create", "repository_delete",
    "push", "tag_delete", "token_refused", "notification_create", "notification_delete",
)


def now_iso() -> str:
    """UTC, ISO 8601 with milliseconds and a ``Z``: sorts as text in time order."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_since(raw: str) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00:00Z`` or an age: ``90s``, ``15m``, ``2h``, ``7d``."""
    text = raw.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if 1 < len(text) <= 8 and text[-1] in units and text[:-1].isdecimal() and text[:-1].isascii():
        try:
            return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
        except OverflowError:  # an age before year 1 (say 9999999d): nothing is older, a 400
            raise ValueError(f"since: the age {raw!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise ValueError(f"since: expected a time like 2026-01-31T12:00:00Z or an age like 2h, got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Query:
    """What to look for; every given field must match."""

    user: str | None = None
    repository: str | None = None  # ns/name
    event: str | None = None
    since: datetime | None = None
    # Only what happened since ``repository`` was last deleted (an earlier repository of the
    # name, maybe of a deleted account whose name was registered again, is not its history).
    current_repository_only: bool = False

    def ends_history(self, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` ended an earlier repository of that name (nothing older counts)."""
        if not self.current_repository_only or self.repository is None:
            return False
        if entry.get("event") == "repository_delete":
            return entry.get("repository") == self.repository
        if entry.get("event") == "account_delete":  # recorded before deletions told each repository
            gone = [*(entry.get("repositories_deleted") or []), *(entry.get("repositories_moved") or [])]
            return self.repository in gone
        return False

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.user is not None and self.user not in (entry.get("user"), entry.get("username")):
            return False
        if self.repository is not None and entry.get("repository") != self.repository:
            return False
        if self.event is not None and entry.get("event") != self.event:
            return False
        if self.since is not None:
            try:
                at = datetime.fromisoformat(str(entry.get("at", "")).replace("Z", "+00:00"))
            except ValueError:
                return False
            if at < self.since:
                return False
        return True


class AuditTrail(ForkSafe):
    """Appends records and reads them back, newest first."""

    def __init__(self, data_dir: Path, max_bytes: int, keep: int) -> None:
        self.folder = Path(data_dir) / AUDIT_FOLDER
        self.path = self.folder / TRAIL_NAME
        self.max_bytes = max_bytes
        self.keep = keep
        super().__init__()

    def _new_locks(self) -> None:
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads one at a time, and across processes the flock."""
        with self._thread_lock, flocked(self.folder / LOCK_NAME, exclusive=True, timeout=LOCK_TIMEOUT_SECONDS,
                                        busy="the audit trail is locked by another writer"):
            yield

    def append(self, entry: dict[str, Any]) -> None:
        """Write one record durably (raises OSError/LockBusy when that is impossible)."""
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        if len(line) >= MAX_LINE_BYTES:
            line = json.dumps({key: entry[key] for key in ("at", "event", "user", "client") if key in entry}
                              | {"truncated": True}, separators=(",", ":")).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._rotate_if_full()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                # After a torn write the file does not end in a newline: start a fresh line.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line + b"\n")
            except BaseException:
                os.close(fd)
                raise
        # Group commit: the fsync runs outside the lock, so concurrent writers' fsyncs of the file
        # overlap and the kernel serves them with one journal commit; each writer still returns
        # only after an fsync that started after its own write (a rotation meanwhile renames the
        # file, and this descriptor still reaches its data).
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rotate_if_full(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.max_bytes:
            return
        if self.keep == 0:
            self.path.unlink()
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._numbered(self.keep))
        for number in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._numbered(number), self._numbered(number + 1))
        os.replace(self.path, self._numbered(1))

    def _numbered(self, number: int) -> Path:
        return self.folder / f"{TRAIL_NAME}.{number}"

    def files(self) -> list[Path]:
        """The trail's files, newest first."""
        candidates = [self.path, *(self._numbered(n) for n in range(1, self.keep + 1))]
        return [path for path in candidates if path.is_file()]

    def newest_first(self) -> Iterator[dict[str, Any]]:
        """Every readable record, newest first; torn or damaged lines are skipped."""
        for path in self.files():
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # rotated away while we read the list
            for line in reversed(raw.split(b"\n")):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if isinstance(entry, dict):
                    yield entry

    def query(self, query: Query, *, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], bool]:
        """Matching records newest first, ``limit`` of them after ``offset``; and whether more follow."""
        found: list[dict[str, Any]] = []
        skipped = 0
        for entry in self.newest_first():
            if query.ends_history(entry):
                break
            if not query.matches(entry):
                continue
            if skipped < offset:
                skipped += 1
                continue
            if len(found) == limit:
                return found, True
            found.append(entry)
        return found, False
