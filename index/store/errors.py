"""Everything the store raises, and the one place an ``OSError`` becomes a :class:`StorageFailure`.

The store knows no HTTP: :mod:`index.errors` maps each of these to its status once.
"""
from __future__ import annotations

import errno
from pathlib import Path

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
            f"directory from a backup (README: 'Storage, durability and backups'), "
            f"or move the file aside to start without it")
        self.path = path


class RecordNotFound(StoreError):
    """The user, repository or image does not exist."""


class AlreadyExists(StoreError):
    """A unique value (``field``) is taken."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


class LimitReached(StoreError):
    """A per-account limit (``what``, e.g. e-mail addresses) would be exceeded; nothing changed."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"at most {limit} {what} per account")
        self.what = what
        self.limit = limit


class ImageConflict(StoreError):
    """The image is already complete, or changed underneath an upload."""

    def __init__(self, message: str = "Image already exists") -> None:
        super().__init__(message)
        self.message = message


def storage_failure(what: str, exc: OSError) -> StorageFailure:
    """``could not <what>: <reason>``, flagged ``no_space`` for a full disk or quota."""
    no_space = exc.errno in _NO_SPACE
    reason = "the disk is full" if no_space else (exc.strerror or str(exc))
    return StorageFailure(f"could not {what}: {reason}", no_space=no_space)


def failure(action: str, path: Path, exc: OSError) -> StorageFailure:
    """:func:`storage_failure` for one file: ``could not <action> <file name>: <reason>``."""
    return storage_failure(f"{action} {path.name}", exc)
