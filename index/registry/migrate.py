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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import RepoName
from ..store.images import COMPLETE, LAYER_STORED

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
