"""The signing key: ``INDEX_SECRET_KEY``, or one generated once into the data dir."""
from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from pathlib import Path

from .store.files import fsync_dir

KEY_FILE = "secret_key"
TEMP_PREFIX = ".secret_key-"
STALE_TEMP_SECONDS = 60.0


def load_or_create_key(data_dir: Path) -> str:
    """Read ``<data_dir>/secret_key``, creating it atomically if absent.

    The key is written to a temp file and hard-linked into place: the link fails if another worker
    got there first, so two workers starting together always end up with the same key, and no
    reader ever sees a half-written file.
    """
    path = data_dir / KEY_FILE
    _remove_stale_temp_keys(data_dir)
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=data_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(temp_name, path)
        finally:
            os.unlink(temp_name)
        fsync_dir(data_dir)
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty: delete it to generate a new key (issued tokens become invalid)")
    return key


def _remove_stale_temp_keys(data_dir: Path) -> None:
    """Drop temp key files a process killed mid-creation left behind (never a fresh one in use)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for temp in data_dir.glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
