"""Opening a data dir written before image versions and blobs existed.

Then an image id had one record (``db/images/<2 hex>.json``) and one layer file
(``layers/<2 hex>/<id>.layer``). At start, each such record becomes one version per account
that owns a repository holding it (the repository record's ``owner``: who created it), held
by those repositories; its layer file becomes a blob (hard-linked, then the old file removed).
Records no repository holds are dropped with their files, as a delete would have done.

Safe to run in several workers at once and to interrupt: a shard is rewritten in one
transaction, blob references are counted before the versions that use them are written (a set:
counting twice changes nothing), and an old layer file is removed only after its shard was
rewritten.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import RepoName
from ..store.access import find_robot
from ..store.files import atomic_write_bytes
from ..store.images import COMPLETE, LAYER_STORED
from .core import RETIRED_MARK

if TYPE_CHECKING:
    from .core import Registry

log = logging.getLogger(__name__)


def _legacy_layer(data_dir: Path, image_id: str) -> Path:
    return data_dir / "layers" / image_id[:2] / f"{image_id}.layer"


def migrate_legacy(registry: Registry) -> int:
    """Convert every legacy image record; returns how many there were (0: nothing to do)."""
    images = registry.images
    legacy: dict[str, dict[str, Any]] = {}
    prefixes = []
    for prefix in images.shard_prefixes():
        found = images.legacy_records(prefix)
        if found:
            prefixes.append(prefix)
            legacy.update(found)
    if not legacy:
        return 0
    holders = _holders(registry, legacy)
    blobs: dict[str, tuple[str, int]] = {}
    for image_id, record in legacy.items():
        if record.get("state") not in (LAYER_STORED, COMPLETE) or not holders.get(image_id):
            continue
        path = _legacy_layer(registry.data_dir, image_id)
        try:
            digest, size = registry.blobs.import_file(path)
        except FileNotFoundError:
            continue  # another worker converted it meanwhile, or it was lost: re-uploaded later
        blobs[image_id] = (digest, size)
        for owner in holders[image_id]:
            registry.images.add_blob_user(digest, image_id, owner, size, commit=lambda: None)

    now = time.time()

    def converted(image_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        owners = holders.get(image_id)
        if not owners:
            return None
        blob = blobs.get(image_id)
        state = record.get("state")
        if state in (LAYER_STORED, COMPLETE) and blob is None:
            return None  # its layer file is gone: the next push uploads it again
        versions = {}
        for owner, refs in owners.items():
            versions[owner] = {
                "uploaded_by": owner, "json": record["json"], "parent": record.get("parent"),
                "ancestry": record.get("ancestry", [image_id]), "state": state,
                "blob": blob[0] if blob else None, "size": record.get("size"),
                "checksum": record.get("checksum"), "payload_checksum": record.get("payload_checksum"),
                "refs": sorted(set(refs)), "created": record.get("created"),
                # Older than anything uploaded from now on; pending ones get a full expiry period.
                "created_at": 0.0, "updated_at": now}
        return versions

    count = sum(images.migrate_shard(prefix, converted) for prefix in prefixes)
    for image_id in legacy:
        with contextlib.suppress(OSError):
            _legacy_layer(registry.data_dir, image_id).unlink()
    for folder in sorted((registry.data_dir / "layers").glob("??")):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
    with contextlib.suppress(OSError):
        (registry.data_dir / "layers").rmdir()
    if count:
        log.info("converted %d image record(s) of an older data dir into image versions and blobs", count)
    return count


def _holders(registry: Registry, legacy: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """image id -> owner account -> the repositories of that owner that hold the id.

    The best evidence of who uploaded an image is a tag of the owner's repository that has it
    in its ancestry: when such repositories exist, only their owners get a version. Otherwise
    (an upload never tagged) the owners of the repositories that announced it do. So a
    repository that only announced another account's id gets no version of it.
    """
    tagged: dict[str, dict[str, list[str]]] = {}
    announced: dict[str, dict[str, list[str]]] = {}
    for record in registry.store.iter_repositories():
        name = RepoName(record["namespace"], record["name"])
        owner = record.get("owner") or record["namespace"]
        for target in record.get("tags", {}).values():
            for image_id in legacy.get(target, {}).get("ancestry", [target]):
                _add(tagged, image_id, owner, name.full)
        for entry in record.get("images", []):
            _add(announced, entry["id"], owner, name.full)
    holders = {}
    for image_id in set(tagged) | set(announced):
        owners = tagged.get(image_id) or announced[image_id]
        holders[image_id] = {owner: sorted({*refs, *announced.get(image_id, {}).get(owner, [])})
                             for owner, refs in owners.items()}
    return holders


def _add(holders: dict[str, dict[str, list[str]]], image_id: str, owner: str, repository: str) -> None:
    held = holders.setdefault(image_id, {}).setdefault(owner, [])
    if repository not in held:
        held.append(repository)


# Written into db/images/ once the pass below has run: it need not look at every shard again.
ORPHANS_RETIRED = "orphans-retired"


def retire_orphans(registry: Registry) -> int:
    """Once per data dir: retire the versions of accounts and robots that no longer exist.

    Deleting an account now retires its versions (``Registry.account_removed``); accounts deleted
    by an older version left theirs under their name, which a later account of that name would
    satisfy. (A name released *and* registered again before this ran cannot be told apart from
    its first account: release and register again after upgrading.) Returns how many retired
    versions had a layer."""
    folder = registry.store.db_dir / "images"
    marker = folder / ORPHANS_RETIRED
    if marker.exists() or not folder.exists():  # (a fresh data dir has nothing to retire)
        return 0
    store = registry.store
    suffix = f"{RETIRED_MARK}{secrets.token_hex(8)}"
    exists: dict[str, bool] = {}

    def renamed(uploader: str) -> str | None:
        if RETIRED_MARK in uploader:
            return None
        if uploader not in exists:
            found = find_robot(store, uploader) if "+" in uploader else store.find_user(uploader)
            exists[uploader] = found is not None
        return None if exists[uploader] else uploader + suffix
    count = registry.retire(renamed)
    try:
        atomic_write_bytes(marker, b"versions of deleted accounts were retired\n")
    except OSError as exc:  # a read-only data dir: the pass runs again at the next start
        log.warning("could not note that the image versions of deleted accounts were retired: %s", exc)
    retired = [name for name, alive in exists.items() if not alive]
    if retired:
        log.info("retired the image versions of %d deleted account(s) or robot(s): %s",
                 len(retired), ", ".join(sorted(retired)[:20]))
    return count
