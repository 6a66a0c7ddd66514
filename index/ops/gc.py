"""``docker-index gc [--dry-run]``: remove what no repository needs, safely beside a running server.

One function per kind of garbage, each returning one line per thing removed (or that would be,
with ``dry_run``). Everything that changes records does it under the store's locks, re-checking
under the lock what it found before, and leaves alone anything young enough to belong to a push
or a write in progress:

* repositories stuck in the ``deleting`` state longer than the delete token lives: finished when
  the registry already dropped their tags (the delete got that far), undone otherwise;
* image uploads never completed within ``INDEX_IMAGE_PENDING_SECONDS``;
* layer blobs no image version uses (image versions no repository holds go with each delete);
* stale layer uploads, temp files of interrupted writes, staging folders of killed backups;
* namespace journals, folded into their files (nothing removed: what reads see stays the same).
"""
from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from ..names import RepoName
from ..store import DELETING, RecordNotFound, Store
from ..store.files import TEMP_MARK

HOUR = 3600.0
DAY = 24 * HOUR
# Younger than this, an unreferenced complete image may belong to a push whose repository
# announcement is still to come (third-party tools upload first, docker announces first).
UNREFERENCED_IMAGE_GRACE = HOUR
INCOMPLETE_RECORD_AGE = DAY
STRAY_FILE_AGE = HOUR
STALE_UPLOAD_AGE = DAY
TEMP_FILE_AGE = HOUR          # a write holds its temp file for milliseconds (lock timeout 30 s)
BACKUP_STAGING_AGE = DAY      # as index.backup: a newer staging folder may be a running backup
BACKUP_STAGING_PREFIX = ".backup-"
SECRET_TEMP_PREFIX = ".secret_key-"


def _age(timestamp: str | None, now: float) -> float:
    """Seconds since an ISO time of the store (unknown or unreadable: treated as brand new)."""
    if not timestamp:
        return 0.0
    try:
        return now - datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return 0.0


def stuck_deletions(store: Store, registry: Any | None, grace: float, dry_run: bool,
                    now: float | None = None) -> list[str]:
    """Repositories left ``deleting`` longer than ``grace`` (the delete token's lifetime)."""
    now = time.time() if now is None else now
    lines = []
    for record in list(store.iter_repositories()):
        if record["state"] != DELETING or _age(record.get("updated"), now) < grace:
            continue
        name = RepoName(record["namespace"], record["name"])
        finish = not record.get("tags")  # the registry step ran: nothing to pull any more
        action = "finish deleting" if finish else "undo the deletion of"
        if not dry_run:
            try:
                if finish:
                    removed = store.delete_repository(name.namespace, name.repository)
                    if registry is not None:
                        registry.repository_removed(removed)
                else:
                    store.mark_active(name.namespace, name.repository)
            except RecordNotFound:
                continue  # finished or deleted by someone else meanwhile
        verb = action if dry_run else ("finished deleting" if finish else "undid the deletion of")
        reason = "its tags were already dropped" if finish else "its tags were never dropped; it is active again"
        lines.append(f"{'would ' if dry_run else ''}{verb} {name.display} (stuck deleting since "
                     f"{record.get('updated', '?')}; {reason})")
    return lines


def unused_blobs(registry: Any, dry_run: bool) -> list[str]:
    """Layer blobs no image version uses (a crash between two steps of an upload or a delete can
    leave one); each is checked again under its blob shard's lock before it goes."""
    unused = [digest for digest in registry.blobs.digests() if not registry.images.blob_users(digest)]
    if dry_run:
        return [f"would remove layer blob {digest} (no image version uses it)" for digest in unused]
    removed = registry.collect_garbage()
    return [f"removed {removed} layer blob(s) no image version uses"] if removed else []


def pending_versions(registry: Any, dry_run: bool, now: float | None = None) -> list[str]:
    """Image uploads never completed by their checksum within INDEX_IMAGE_PENDING_SECONDS (a
    day by default): the version goes, and its blob when nothing else uses it."""
    now = time.time() if now is None else now
    cutoff = now - registry.images.pending_seconds
    stale = [(image_id, uploader) for prefix in registry.images.shard_prefixes()
             for image_id, versions in registry.images.versions_of(_shard_ids(registry, prefix)).items()
             for uploader, version in versions.items()
             if version["state"] != "complete" and version["updated_at"] < cutoff]
    if dry_run:
        return [f"would remove image {image_id} uploaded by {uploader} (never completed)"
                for image_id, uploader in stale]
    freed = registry.expire_pending()
    return ([f"removed {len(stale)} image upload(s) never completed ({freed} blob(s) freed)"]
            if stale or freed else [])


def _shard_ids(registry: Any, prefix: str) -> list[str]:
    datafile = registry.store.tables.existing(registry.store.db_dir / "images" / f"{prefix}.json")
    return list(datafile.read_shared().get("images", {})) if datafile is not None else []


def stale_uploads(registry: Any, dry_run: bool) -> list[str]:
    """Layer uploads whose client went away (temp files, temporary objects, multipart uploads)."""
    if dry_run:
        return []  # what a store would clean is its own; say nothing rather than guess
    count = registry.blobs.remove_stale_uploads(STALE_UPLOAD_AGE)
    return [f"removed {count} unfinished layer upload(s)"] if count else []


def temp_files(data_dir: Path, dry_run: bool, now: float | None = None) -> list[str]:
    """Temp files of writes that were killed, and staging folders of killed backups."""
    now = time.time() if now is None else now
    lines = []
    old_files = [path for path in _files(data_dir / "db", f"*{TEMP_MARK}*", recursive=True)
                 if now - _mtime(path) >= TEMP_FILE_AGE]
    old_files += [path for path in _files(data_dir, SECRET_TEMP_PREFIX + "*")
                  if now - _mtime(path) >= TEMP_FILE_AGE]
    for path in old_files:
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        lines.append(f"{'would remove' if dry_run else 'removed'} temp file {path}")
    for folder in sorted(data_dir.glob(BACKUP_STAGING_PREFIX + "*")):
        if folder.is_dir() and now - _mtime(folder) >= BACKUP_STAGING_AGE:
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            lines.append(f"{'would remove' if dry_run else 'removed'} staging folder of a killed backup {folder}")
    return lines


def journals(store: Store, dry_run: bool) -> list[str]:
    """Namespace journals folded into their files: what an earlier build, which reads no
    journal, needs before a downgrade (see CHANGELOG.md)."""
    return [f"{'would fold' if dry_run else 'folded'} the journal of namespace {namespace} into its file"
            for namespace in store.fold_journals(dry_run)]


def _files(folder: Path, pattern: str, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(path for path in found if path.is_file())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()  # gone meanwhile: never counts as old


def collect_garbage(store: Store, registry: Any | None, data_dir: Path, delete_grace: float,
                    dry_run: bool, echo: Callable[[str], None]) -> int:
    """Every kind, in an order where one's removals feed the next; returns how many lines."""
    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("stuck deletions", lambda: stuck_deletions(store, registry, delete_grace, dry_run))]
    if registry is not None:
        steps += [("pending image uploads", lambda: pending_versions(registry, dry_run)),
                  ("unused blobs", lambda: unused_blobs(registry, dry_run)),
                  ("stale uploads", lambda: stale_uploads(registry, dry_run))]
    steps.append(("temp files", lambda: temp_files(data_dir, dry_run)))
    steps.append(("journals", lambda: journals(store, dry_run)))
    total = 0
    for _title, step in steps:
        for line in step():
            echo(line)
            total += 1
    return total


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@with_appcontext
def gc_command(dry_run: bool) -> None:
    """Remove unused layers and images, stuck deletions, stale uploads and temp files; fold journals.

    Safe while the index serves: everything young enough to be part of a push is kept.
    """
    from flask import current_app

    from ..services import services
    found = services()
    total = collect_garbage(found.store, found.registry, found.store.root, current_app.config["TOKEN_TTL"],
                            dry_run, click.echo)
    if not total:
        click.echo("nothing to collect")
    elif dry_run:
        click.echo(f"{total} thing(s) would be removed; run without --dry-run to remove them")
