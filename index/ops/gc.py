"""``docker-index gc [--dry-run]``: remove what no repository needs, safely beside a running server.

One function per kind of garbage, each returning one line per thing removed (or that would be,
with ``dry_run``). Everything that changes records does it under the store's locks, re-checking
under the lock what it found before, and leaves alone anything young enough to belong to a push
or a write in progress:

* repositories stuck in the ``deleting`` state longer than the delete token lives: finished when
  the registry already dropped their tags (the delete got that far), undone otherwise;
* complete images no repository references (record and layer file);
* image records that never got their layer confirmed, older than a day;
* layer files without a record that owns them;
* stale layer uploads, temp files of interrupted writes, staging folders of killed backups.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

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


def unreferenced_images(registry: Any, dry_run: bool, now: float | None = None) -> list[str]:
    """Complete images no repository references any more, with their layer files."""
    now = time.time() if now is None else now
    candidates = []
    for image_id in registry.images.ids():
        found = registry.images.get(image_id)
        if (found is not None and found.get("state") == "complete"
                and _age(found.get("updated") or found.get("created"), now) >= UNREFERENCED_IMAGE_GRACE):
            candidates.append(image_id)
    if dry_run:
        needed: set[str] = set()
        for record in registry.store.iter_repositories():
            needed |= registry._references_of(record)
        removed = sorted(set(candidates) - needed)
    else:
        removed = registry.collect(candidates, keep_for=None)
    return [f"{'would remove' if dry_run else 'removed'} image {image_id} (no repository uses it)"
            for image_id in removed]


def incomplete_records(registry: Any, dry_run: bool, now: float | None = None) -> list[str]:
    """Image records whose layer never arrived or was never confirmed, older than a day."""
    now = time.time() if now is None else now

    def stale(found: dict[str, Any] | None) -> bool:
        return (found is not None and found.get("state") != "complete"
                and _age(found.get("updated") or found.get("created"), now) >= INCOMPLETE_RECORD_AGE)

    candidates = [image_id for image_id in registry.images.ids() if stale(registry.images.get(image_id))]
    if not candidates:
        return []
    if dry_run:
        removed = candidates
    else:
        with registry.store.lock_all():  # no upload can change one between the check and removal
            still = [image_id for image_id in candidates if stale(registry.images.get(image_id))]
            removed = registry.images.remove(still, registry.layers.remove)
    return [f"{'would remove' if dry_run else 'removed'} image record {image_id} (never completed, "
            f"older than {INCOMPLETE_RECORD_AGE / HOUR:.0f} h)" for image_id in removed]


def stray_layer_files(registry: Any, dry_run: bool, now: float | None = None) -> list[str]:
    """Layer files no image record owns (left by a crash between the file and its record)."""
    now = time.time() if now is None else now
    layers_dir: Path = registry.layers.layers_dir
    if not layers_dir.is_dir():
        return []

    def stray(path: Path) -> bool:
        found = registry.images.get(path.name.removesuffix(".layer"))
        with contextlib.suppress(FileNotFoundError):
            return (found is None or found.get("state") not in ("layer", "complete")) and \
                now - path.stat().st_mtime >= STRAY_FILE_AGE
        return False

    candidates = [path for path in sorted(layers_dir.glob("??/*.layer")) if stray(path)]
    lines = []
    with contextlib.ExitStack() as held:
        if candidates and not dry_run:
            held.enter_context(registry.store.lock_all())  # no layer is attached meanwhile
        for path in candidates:
            if not dry_run:
                if not stray(path):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            lines.append(f"{'would remove' if dry_run else 'removed'} layer file {path} (no image record owns it)")
    return lines


def stale_uploads(registry: Any, dry_run: bool, now: float | None = None) -> list[str]:
    """Layer uploads whose client went away (not written to for a day)."""
    now = time.time() if now is None else now
    uploads_dir: Path = registry.layers.uploads_dir
    if dry_run:
        old = [path for path in _files(uploads_dir, "*.part") if now - _mtime(path) >= STALE_UPLOAD_AGE]
        return [f"would remove unfinished upload {path}" for path in old]
    count = registry.layers.remove_stale_uploads(STALE_UPLOAD_AGE)
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
        steps += [("unreferenced images", lambda: unreferenced_images(registry, dry_run)),
                  ("incomplete image records", lambda: incomplete_records(registry, dry_run)),
                  ("stray layer files", lambda: stray_layer_files(registry, dry_run)),
                  ("stale uploads", lambda: stale_uploads(registry, dry_run))]
    steps.append(("temp files", lambda: temp_files(data_dir, dry_run)))
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
    """Remove unused layers and images, stuck deletions, stale uploads and temp files.

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
