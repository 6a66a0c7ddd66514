"""Backups of the whole data dir while the index runs, and restores onto a stopped index.

``backup``: with every write held off (:meth:`Store.lock_all`), each file of the data dir is
hard-linked into a staging folder — no data is copied, so writes wait well under a second. Data
files are never changed in place (always replaced whole), so the links keep the moment's versions
while the archive is compressed afterwards. Their journals (``*.journal``, small, appended to
in place) are copied instead, and restored as they are: a journal applies to the base it names.
The archive is written to a temp file, fsynced and renamed, so ``DEST`` is a whole archive or
absent.

``restore``: refuses while any index process uses the data dir, refuses a data dir that holds data
unless ``--force`` (then the old content is moved aside, not deleted), checks that every archive
member is a plain file or folder that stays inside the data dir, and checks that every data file
parses before anything is swapped in.

Both are ``docker-index backup|restore`` commands; restore also works when the data dir is too
damaged for the app to start. ``backup --keep N DIR`` keeps the newest N archives in DIR.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import click

from ..store import CHANGES_NAME, Store
from ..store.errors import StoreError
from ..store.files import (
    GATE_LOCK,
    IN_USE_LOCK,
    JOURNAL_SUFFIX,
    LOCK_SUFFIX,
    TEMP_MARK,
    DataFile,
    atomic_file,
    exclusive_use,
    fsync_dir,
)

MANIFEST = "index-backup.json"
FORMAT = 1
STAGING_PREFIX = ".backup-"
RESTORING_PREFIX = ".restore-"
ASIDE_PREFIX = ".before-restore-"
# A staging folder older than this belongs to a backup that was killed; newer ones may be running.
STALE_STAGING_SECONDS = 24 * 3600
# Files the index creates on its own at start: a data dir holding only these counts as empty.
_LOCK_FILES = {GATE_LOCK, IN_USE_LOCK}


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass
class Summary:
    path: Path
    files: int
    bytes: int


def _skipped(relative: PurePosixPath) -> bool:
    """Locks, temp files of interrupted writes, the change log (a hint for running workers) and
    our own working folders never go in a backup."""
    first = relative.parts[0]
    name = relative.name
    # uploads/ holds layer uploads in progress: never complete images, so never data to keep.
    return (first.startswith((STAGING_PREFIX, RESTORING_PREFIX, ASIDE_PREFIX)) or first == "uploads"
            or name in _LOCK_FILES or name == CHANGES_NAME or name.endswith(LOCK_SUFFIX) or TEMP_MARK in name
            or name.startswith(".secret_key-"))


def _walk(root: Path) -> Iterator[tuple[Path, PurePosixPath]]:
    """Every regular file under ``root`` that belongs in a backup, with its archive name.

    ``os.scandir`` answers "is it a plain file?" from the directory itself, without a stat per
    file: the listing runs while writes are held off.
    """
    pending = [(root, PurePosixPath())]
    while pending:
        folder, relative_folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                relative = relative_folder / entry.name
                if _skipped(relative):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), relative))
                elif entry.is_file(follow_symlinks=False):
                    yield Path(entry.path), relative


def _remove_stale_staging(data_dir: Path) -> None:
    for entry in data_dir.glob(STAGING_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if time.time() - entry.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(entry)


def create_backup(store: Store, dest: Path, layers_elsewhere: str | None = None) -> Summary:
    """Write a consistent ``.tar.gz`` snapshot of ``store``'s data dir to ``dest``.

    ``layers_elsewhere`` names the object storage that holds the layers (INDEX_LAYER_STORAGE):
    the archive then holds the metadata only, and its manifest says where the layers are."""
    data_dir = store.root.resolve()
    dest = Path(dest).resolve()
    if dest == data_dir or data_dir in dest.parents:
        raise BackupError(f"{dest} is inside the data dir {data_dir}: write the backup elsewhere")
    if dest.is_dir():
        raise BackupError(f"{dest} is a folder: give the archive's file name, e.g. backup.tar.gz")
    if not dest.parent.is_dir():
        raise BackupError(f"folder {dest.parent} does not exist")
    _remove_stale_staging(data_dir)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_dir))
    try:
        with store.lock_all():
            names = _snapshot(data_dir, staging)
        for relative in names:
            if relative.parts[0] == "db" and relative.suffix == ".json":
                DataFile(staging / relative).check()  # never archive a damaged file silently
        size = _write_archive(staging, names, dest, layers_elsewhere)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Summary(dest, len(names), size)


def _snapshot(data_dir: Path, staging: Path) -> list[PurePosixPath]:
    names = []
    made: set[PurePosixPath] = set()
    for path, relative in _walk(data_dir):
        if relative.parent not in made:
            (staging / relative.parent).mkdir(parents=True, exist_ok=True)
            made.add(relative.parent)
        target = staging / relative
        try:
            if relative.name.endswith(JOURNAL_SUFFIX):
                # Appended to in place once writes resume: a link would take in lines written
                # after this snapshot (or a torn tail's truncation). A copy is its content now.
                shutil.copy2(path, target)
            else:
                os.link(path, target)  # data files are replaced by rename, never changed in place
        except FileNotFoundError:
            continue  # removed between listing and linking (e.g. a temp layer file)
        except OSError:
            shutil.copy2(path, target)  # file system without hard links
        names.append(relative)
    return names


def _write_archive(staging: Path, names: list[PurePosixPath], dest: Path, layers_elsewhere: str | None) -> int:
    manifest = json.dumps({"format": FORMAT, "created": datetime.now(UTC).isoformat(),
                           "layers": layers_elsewhere or "in this archive",
                           "files": [str(name) for name in names]}, indent=1).encode()
    with atomic_file(dest) as fd:
        with os.fdopen(fd, "wb", closefd=False) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(manifest))
            for name in names:
                # Each member built by hand as a plain file: tarfile's own add() would store files
                # that share an inode (hard links inside the data dir) as links, which restore refuses.
                with open(staging / name, "rb") as source:
                    stat = os.fstat(source.fileno())
                    info = tarfile.TarInfo(str(name))
                    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
                    tar.addfile(info, source)
    return dest.stat().st_size


# -- restore ---------------------------------------------------------------------------------
def _checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members, refusing anything but plain files and folders inside the target."""
    members = tar.getmembers()
    if not any(member.name == MANIFEST for member in members):
        raise BackupError(f"not an index backup: {MANIFEST} is missing")
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or "\\" in member.name or not name.parts:
            raise BackupError(f"archive member {member.name!r} would land outside the data dir")
        if not (member.isfile() or member.isdir()):
            raise BackupError(f"archive member {member.name!r} is not a plain file or folder")
        if _skipped(name) and member.isfile():
            raise BackupError(f"archive member {member.name!r} is not something a backup contains")
    return members


def _holds_data(data_dir: Path, admin_username: str | None) -> bool:
    """True unless ``data_dir`` only has what a fresh start creates (key, locks, bootstrap admin)."""
    if not data_dir.exists():
        return False
    for path, relative in _walk(data_dir):
        if str(relative) in ("secret_key", "secret_key_fallbacks.json"):
            continue
        if relative.parts[0] == "db" and relative.suffix == ".json":
            try:
                content = DataFile(path).read_private()
            except StoreError:
                return True
            records: dict[str, Any] = next(iter(content.values()), {}) if content else {}
            if str(relative) == "db/users.json" and set(records) <= {admin_username}:
                continue
            if not records:
                continue
        return True
    return False


def restore_backup(archive: Path, data_dir: Path, *, force: bool = False,
                   admin_username: str | None = None) -> Summary:
    """Replace ``data_dir``'s content with ``archive``'s; the index must be stopped."""
    archive, data_dir = Path(archive).resolve(), Path(data_dir).resolve()
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist")
    with exclusive_use(data_dir):
        for leftover in data_dir.glob(RESTORING_PREFIX + "*"):  # from a restore that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        keep_aside = _holds_data(data_dir, admin_username)
        if keep_aside and not force:
            raise BackupError(f"{data_dir} already holds data; give --force to replace it (the "
                              f"current content is then kept in {data_dir}/{ASIDE_PREFIX}<time>)")
        staging = Path(tempfile.mkdtemp(prefix=RESTORING_PREFIX, dir=data_dir))
        try:
            files, size = _extract(archive, staging)
            for path in (staging / "db").rglob("*.json"):
                DataFile(path).check()
            _swap_in(staging, data_dir, keep_aside)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Summary(data_dir, files, size)


def _extract(archive: Path, staging: Path) -> tuple[int, int]:
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive} is not a readable .tar.gz: {exc}") from None
    files = size = 0
    with tar:
        try:
            for member in _checked_members(tar):
                if member.name == MANIFEST:
                    continue
                target = staging / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(target, member.mode & 0o700 or 0o600)
                files, size = files + 1, size + member.size
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{archive} could not be read completely: {exc}") from None
    return files, size


def _swap_in(staging: Path, data_dir: Path, keep_aside: bool) -> None:
    """Move the current content aside (or delete a fresh start's), then the restored content in."""
    current = [entry for entry in data_dir.iterdir()
               if entry.name not in _LOCK_FILES and entry != staging
               and not entry.name.startswith((STAGING_PREFIX, RESTORING_PREFIX, ASIDE_PREFIX))]
    if current and keep_aside:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = Path(tempfile.mkdtemp(prefix=f"{ASIDE_PREFIX}{stamp}-", dir=data_dir))
        for entry in current:
            os.replace(entry, aside / entry.name)
    elif current:
        for entry in current:  # only what a fresh start creates: a generated key, empty files
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in staging.iterdir():
        os.replace(entry, data_dir / entry.name)
    for folder in (data_dir, *(path for path in data_dir.rglob("*") if path.is_dir()
                               and not path.name.startswith(ASIDE_PREFIX))):
        fsync_dir(folder)


# -- command line ----------------------------------------------------------------------------
ROTATED_PREFIX = "index-backup-"
ROTATED_SUFFIX = ".tar.gz"


def rotated_backup(store: Store, folder: Path, keep: int, layers_elsewhere: str | None = None,
                   now: datetime | None = None) -> tuple[Summary, list[Path]]:
    """A new ``index-backup-<UTC time>.tar.gz`` in ``folder``, then the oldest beyond ``keep``
    removed (only files of that name pattern: nothing else in the folder is touched)."""
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{ROTATED_PREFIX}{moment}{ROTATED_SUFFIX}"
    counter = 1
    while dest.exists():  # two backups in one second: keep both
        dest = folder / f"{ROTATED_PREFIX}{moment}-{counter}{ROTATED_SUFFIX}"
        counter += 1
    summary = create_backup(store, dest, layers_elsewhere)
    # The time stamp sorts as text; the archive just written is always among those kept.
    existing = sorted(path for path in folder.glob(f"{ROTATED_PREFIX}*{ROTATED_SUFFIX}") if path.is_file())
    removed = [path for path in existing[:-keep] if path != summary.path]
    for path in removed:
        path.unlink(missing_ok=True)
    return summary, removed


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--keep", type=click.IntRange(min=1),
              help="DEST is a directory: write index-backup-<time>.tar.gz into it and keep only "
                   "the newest KEEP backups there.")
def backup_command(dest: Path, keep: int | None) -> None:
    """Write a consistent .tar.gz of the data dir to DEST while the index keeps running."""
    from flask import current_app

    from ..services import services
    location = current_app.config.get("LAYER_STORAGE")
    layers_elsewhere = str(location) if location is not None else None
    try:
        if keep is not None:
            if dest.exists() and not dest.is_dir():
                raise BackupError(f"{dest} is not a directory (--keep writes into a directory)")
            summary, removed = rotated_backup(services().store, dest, keep, layers_elsewhere)
        else:
            if dest.is_dir():
                raise BackupError(f"{dest} is a directory: name the archive file, or pass --keep N")
            summary, removed = create_backup(services().store, dest, layers_elsewhere), []
    except (BackupError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written to {summary.path}: {summary.files} files, {summary.bytes} bytes")
    for path in removed:
        click.echo(f"removed old backup {path}")
    if layers_elsewhere:
        click.echo(f"it holds the metadata only (accounts, repositories, tags, image records): the layers "
                   f"are in {layers_elsewhere}; back that bucket up too (README: Layers in S3)")


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace a data dir that holds data (kept aside)")
def restore_command(archive: Path, force: bool) -> None:
    """Restore ARCHIVE (made by backup) into the data dir of a stopped index."""
    from flask import current_app

    from ..services import services
    store = services().store
    store.close()  # this command opened the data dir itself to start the app
    _restore_and_report(archive, store.root, force, current_app.config.get("ADMIN_USERNAME"))


def _restore_and_report(archive: Path, data_dir: Path, force: bool, admin: str | None) -> None:
    try:
        summary = restore_backup(archive, data_dir, force=force, admin_username=admin)
    except (BackupError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {summary.files} files ({summary.bytes} bytes) into {summary.path}")


@click.group()
def main() -> None:
    """Backups without starting the app (for a data dir too damaged to start)."""


@main.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace a data dir that holds data (kept aside)")
def standalone_restore(archive: Path, force: bool) -> None:
    """Restore ARCHIVE into INDEX_DATA_DIR without starting the app."""
    from ..config import load_config
    settings = load_config()
    _restore_and_report(archive, settings["DATA_DIR"], force, settings["ADMIN_USERNAME"])
