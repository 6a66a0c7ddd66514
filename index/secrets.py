"""The signing key: ``INDEX_SECRET_KEY``, or one generated once into the data dir."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

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


FALLBACKS_FILE = "secret_key_fallbacks.json"


def stored_fallbacks(data_dir: Path, now: float | None = None) -> list[str]:
    """Keys retired by ``rotate-key`` whose tokens may still be valid (newest first)."""
    now = time.time() if now is None else now
    return [entry["key"] for entry in _read_fallbacks(data_dir) if entry["until"] > now]


def _read_fallbacks(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / FALLBACKS_FILE
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is damaged ({exc}): delete it (tokens signed with retired keys "
                         f"become invalid)") from None
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("key"), str)
            and isinstance(entry.get("until"), (int, float)) for entry in entries):
        raise ValueError(f"{path} is damaged: delete it (tokens signed with retired keys become invalid)")
    return entries


def rotate_key(data_dir: Path, keep_old_for: float, now: float | None = None) -> float:
    """Replace ``<data_dir>/secret_key`` with a new key; the old one stays a fallback for
    ``keep_old_for`` seconds (tokens it signed keep working). Returns when it stops being one.

    Both files are written whole to temp names and renamed: a crash leaves the old key or the
    new one, never neither. The fallbacks file is written first, so the old key is never lost.
    """
    now = time.time() if now is None else now
    old_key = load_or_create_key(data_dir)
    until = now + keep_old_for
    kept = [entry for entry in _read_fallbacks(data_dir) if entry["until"] > now]
    _write_whole(data_dir, FALLBACKS_FILE, json.dumps([{"key": old_key, "until": until}, *kept]))
    _write_whole(data_dir, KEY_FILE, secrets.token_urlsafe(48))
    return until


def _write_whole(data_dir: Path, name: str, text: str) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=data_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        os.replace(temp_name, data_dir / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_dir(data_dir)
