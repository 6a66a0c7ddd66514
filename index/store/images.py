"""Image versions of the built-in registry, and which versions use which blob.

    <data dir>/db/images/<00..ff>.json   image id -> {"id", "versions": {uploader: version}}
    <data dir>/db/blobs/<00..ff>.json    blob digest -> {"users": ["<id>/<uploader>", ...], "size"}

v1 image ids are chosen by clients, so one id may exist in several **versions**, one per account
that uploaded it (``uploaded_by``). A version holds the image json exactly as uploaded, parent,
ancestry, the state of its upload (``json``: json stored, ``layer``: layer stored and checksums
computed, ``complete``: checksum confirmed by the client), its blob digest, size, checksums,
times, and ``refs``: the repositories (``ns/repo``) that hold it. A version with no ref left is
dropped, and a blob with no version left is deleted. Which version a request sees is the
caller's choice (``index.registry.scope``), passed in as a predicate so that it is checked again
under the shard's lock.

Each method changes one shard (or one blob shard) under its lock: no method holds a lock on more
than one image shard, so deleting a big repository never blocks others for long.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import Store
from .errors import ImageConflict, RecordNotFound
from .files import DataFile
from .records import json_copy, now
from .tables import Document

JSON_STORED = "json"
LAYER_STORED = "layer"
COMPLETE = "complete"
TABLE = "images"
BLOB_TABLE = "blobs"

Version = dict[str, Any]
Satisfies = Callable[[Version], bool]


def is_legacy(doc: dict[str, Any]) -> bool:
    """A record written before image versions existed (one record per id, no ``versions``)."""
    return "versions" not in doc


def choose(versions: dict[str, Version], satisfies: Satisfies, state: str = COMPLETE) -> Version | None:
    """The oldest version in ``state`` that ``satisfies`` (oldest: what children were built on)."""
    found = [version for version in versions.values()
             if version["state"] == state and satisfies(version)]
    return min(found, key=lambda version: (version["created_at"], version["uploaded_by"]), default=None)


def _versions_of(doc: dict[str, Any] | None) -> dict[str, Version]:
    """A copy of the record's versions to change (none for a missing or legacy record)."""
    return {} if doc is None or is_legacy(doc) else dict(doc["versions"])


def _unfinished(versions: dict[str, Version], uploader: str, satisfies: Satisfies, missing: str) -> Version:
    """``uploader``'s version, still being uploaded: RecordNotFound (``missing``) without one,
    ImageConflict once it or another version that ``satisfies`` is complete."""
    old = versions.get(uploader)
    if old is None:
        raise RecordNotFound(missing)
    if old["state"] == COMPLETE or choose(versions, satisfies) is not None:
        raise ImageConflict()
    return old


def _apply(images: Any, changes: dict[str, dict[str, Version]]) -> None:
    """Write new ``versions`` of existing documents in one pass ({}: the document goes).

    One TinyDB update/remove per batch, not one per id: each call re-reads the whole table."""
    updated = [image_id for image_id, versions in changes.items() if versions]
    removed = [image_id for image_id, versions in changes.items() if not versions]

    def set_versions(doc: dict[str, Any]) -> None:
        doc["versions"] = changes[doc["id"]]
    if updated:
        images.update(set_versions, doc_ids=updated)
    if removed:
        images.remove(doc_ids=removed)


def _blob_user(image_id: str, uploader: str) -> str:
    return f"{image_id}/{uploader}"


class ImageStore:
    """Image versions and blob references, on the index's Store (same locks, same durable files)."""

    def __init__(self, store: Store, pending_seconds: float = 24 * 3600) -> None:
        self._store = store
        self.pending_seconds = pending_seconds

    # -- plumbing ---------------------------------------------------------------------------
    def _shard_path(self, image_id: str) -> Path:
        # image ids are validated as 64 lower-case hex digits before they get here.
        return self._store.db_dir / "images" / f"{image_id[:2]}.json"

    def _shard(self, image_id: str) -> DataFile:
        return self._store.tables.datafile(self._shard_path(image_id))

    def _blob_shard(self, digest: str) -> DataFile:
        hexdigest = digest.partition(":")[2]
        return self._store.tables.datafile(self._store.db_dir / "blobs" / f"{hexdigest[:2]}.json")

    def shard_prefixes(self) -> list[str]:
        folder = self._store.db_dir / "images"
        return sorted(path.stem for path in folder.glob("*.json")) if folder.exists() else []

    # -- reading ----------------------------------------------------------------------------
    def versions(self, image_id: str) -> dict[str, Version]:
        """Every version of ``image_id`` by uploader (copies); {} for an unknown id."""
        doc = self._store.tables.lookup(self._shard_path(image_id), TABLE, image_id)
        if doc is None or is_legacy(doc):
            return {}
        return json_copy(doc["versions"])

    def versions_of(self, image_ids: Iterable[str]) -> dict[str, dict[str, Version]]:
        """``versions`` of many ids at once, reading each shard once (read-only views: do not
        change them). Ids without versions are left out."""
        by_shard: dict[str, list[str]] = {}
        for image_id in set(image_ids):
            by_shard.setdefault(image_id[:2], []).append(image_id)
        found: dict[str, dict[str, Version]] = {}
        for prefix, ids in by_shard.items():
            datafile = self._store.tables.existing(self._store.db_dir / "images" / f"{prefix}.json")
            if datafile is None:
                continue
            docs = datafile.read_shared().get(TABLE, {})
            for image_id in ids:
                doc = docs.get(image_id)
                if doc is not None and not is_legacy(doc):
                    found[image_id] = doc["versions"]
        return found

    def find(self, image_id: str, satisfies: Satisfies, state: str = COMPLETE) -> Version | None:
        return choose(self.versions(image_id), satisfies, state)

    def legacy_records(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Records of shard ``prefix`` still in the pre-version form (see ``migrate_shard``)."""
        path = self._store.db_dir / "images" / f"{prefix}.json"
        datafile = self._store.tables.existing(path)
        if datafile is None:
            return {}
        docs = datafile.read_shared().get(TABLE, {})
        return {key: json_copy(doc) for key, doc in docs.items() if is_legacy(doc)}

    # -- an upload, step by step --------------------------------------------------------------
    def put_json(self, image_id: str, uploader: str, raw_json: str, parent: str | None,
                 ancestry: list[str], refs: Iterable[str],
                 satisfies: Satisfies) -> tuple[Version, list[tuple[str, str, str]]]:
        """Store (or replace) ``uploader``'s json of an image that is not complete for this scope.

        Returns the version and the blob digests no longer used by it (a replaced json makes a
        stored layer worthless) or by pending versions of this shard that expired: the caller
        releases them with :meth:`drop_blob_users`. ImageConflict when a complete version satisfies.
        """
        stamp = time.time()
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            released = self._expire_in(images, stamp, keep=(image_id, uploader))
            doc = images.get(doc_id=image_id)
            versions = _versions_of(doc)
            if choose(versions, satisfies) is not None:
                raise ImageConflict()
            old = versions.get(uploader)
            if old is not None and old["state"] == COMPLETE:
                raise ImageConflict()  # complete versions never change
            if old is not None and old.get("blob"):
                released.append((image_id, uploader, old["blob"]))
            versions[uploader] = {
                "uploaded_by": uploader, "json": raw_json, "parent": parent, "ancestry": ancestry,
                "state": JSON_STORED, "blob": None, "size": None, "checksum": None,
                "payload_checksum": None, "refs": sorted(set(refs)), "created": now(),
                "created_at": stamp, "updated_at": stamp}
            images.upsert(Document({"id": image_id, "versions": versions}, doc_id=image_id))
        return json_copy(versions[uploader]), released

    def attach_layer(self, image_id: str, uploader: str, raw_json: str, blob: str, size: int,
                     checksum: str, payload_checksum: str, satisfies: Satisfies) -> str | None:
        """Point ``uploader``'s version at an uploaded blob (already committed and counted with
        :meth:`add_blob_user`); returns the blob it used before, if another.

        ImageConflict if a version became complete meanwhile or the json was replaced during the
        upload; NotFound if the version is gone (expired, or its repository deleted).
        """
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            versions = _versions_of(doc)
            old = _unfinished(versions, uploader, satisfies, f"image {image_id} has no json: upload the json first")
            if old["json"] != raw_json:
                raise ImageConflict("the image json changed during the layer upload; upload again")
            versions[uploader] = {**old, "state": LAYER_STORED, "blob": blob, "size": size,
                                  "checksum": checksum, "payload_checksum": payload_checksum,
                                  "updated_at": time.time()}
            images.upsert(Document({"id": image_id, "versions": versions}, doc_id=image_id))
        previous = old.get("blob")
        return previous if previous and previous != blob else None

    def mark_complete(self, image_id: str, uploader: str, checksum: str, payload_checksum: str,
                      satisfies: Satisfies) -> Version:
        """Complete the version if it still holds the layer these checksums were verified against."""
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            versions = _versions_of(doc)
            old = _unfinished(versions, uploader, satisfies, f"image {image_id} not found")
            if (old["state"] != LAYER_STORED or old["checksum"] != checksum
                    or old["payload_checksum"] != payload_checksum):
                raise ImageConflict("the image's layer changed during the checksum check; upload again")
            versions[uploader] = {**old, "state": COMPLETE, "updated_at": time.time()}
            images.upsert(Document({"id": image_id, "versions": versions}, doc_id=image_id))
        return json_copy(versions[uploader])

    # -- which repositories hold a version -----------------------------------------------------
    def claim(self, image_id: str, ref: str, satisfies: Satisfies) -> Version | None:
        """The complete version that ``satisfies``, now also held by repository ``ref``.

        Atomic with deletes: a version a delete dropped a moment ago is not found (None: the
        client uploads it again); one found here keeps ``ref`` until that repository goes. A
        version that already has ``ref`` costs no write (a re-push).
        """
        version = self.find(image_id, satisfies)
        if version is None or ref in version["refs"]:
            return version
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            versions = _versions_of(doc)
            version = choose(versions, satisfies)
            if version is None:
                return None
            if ref not in version["refs"]:
                version = {**version, "refs": sorted({*version["refs"], ref})}
                versions[version["uploaded_by"]] = version
                images.upsert(Document({"id": image_id, "versions": versions}, doc_id=image_id))
        return json_copy(version)

    def release(self, ref: str, image_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """Repository ``ref`` no longer holds these ids: drop ``ref`` from their versions and
        the versions no repository holds any more. One short transaction per shard touched.

        Returns (image id, uploader, blob digest) of each dropped version that had a blob.
        """
        released: list[tuple[str, str, str]] = []

        def without_ref(image_id: str, versions: dict[str, Version]) -> dict[str, Version] | None:
            if not any(ref in version["refs"] for version in versions.values()):
                return None
            kept: dict[str, Version] = {}
            for uploader, version in versions.items():
                refs = [held for held in version["refs"] if held != ref]
                if ref not in version["refs"]:
                    kept[uploader] = version
                elif refs:
                    kept[uploader] = {**version, "refs": refs}
                elif version.get("blob"):
                    released.append((image_id, uploader, version["blob"]))
            return kept

        self._rewrite_held(ref, image_ids, without_ref)
        return released

    def _rewrite_held(self, ref: str, image_ids: Iterable[str],
                      change: Callable[[str, dict[str, Version]], dict[str, Version] | None]) -> None:
        """``change(image_id, versions)`` -> new versions ({}: the document goes; None: unchanged)
        for each of ``image_ids`` that repository ``ref`` holds; one transaction per shard where
        it holds any, whose cost is one rewrite of that shard (what any upload into it costs)."""
        by_shard: dict[str, list[str]] = {}
        for image_id, versions in self.versions_of(image_ids).items():
            if any(ref in version["refs"] for version in versions.values()):
                by_shard.setdefault(image_id[:2], []).append(image_id)
        for batch in by_shard.values():
            with self._store.tables.transaction(self._shard(batch[0]), TABLE) as images:
                changes: dict[str, dict[str, Version]] = {}
                for image_id in batch:
                    doc = images.get(doc_id=image_id)
                    if doc is None or is_legacy(doc):
                        continue
                    changed = change(image_id, doc["versions"])
                    if changed is not None:
                        changes[image_id] = changed
                _apply(images, changes)

    def rename_ref(self, old: str, new: str, image_ids: Iterable[str], from_uploaders: Iterable[str],
                   to_uploader: str) -> list[tuple[str, str, str, int]]:
        """Versions held by repository ``old`` are held by ``new`` instead (a moved repository),
        and one that ``from_uploaders`` uploaded (the first of them that has one) becomes
        ``to_uploader``'s (the account it moved to), unless that account has its own version of
        the id; one transaction per shard touched.

        Returns (image id, blob, old uploader, size) of each version that changed hands, whose
        blob use the caller moves over (:meth:`add_blob_user`, :meth:`drop_blob_users`)."""
        moved: list[tuple[str, str, str, int]] = []
        uploaders = list(from_uploaders)

        def moved_over(image_id: str, held: dict[str, Version]) -> dict[str, Version]:
            versions = {
                uploader: ({**version, "refs": sorted({*version["refs"], new} - {old})}
                           if old in version["refs"] else version)
                for uploader, version in held.items()}
            for from_uploader in uploaders:
                mine = versions.get(from_uploader)
                if mine is None or new not in mine["refs"] or to_uploader in versions:
                    continue
                versions[to_uploader] = {**versions.pop(from_uploader), "uploaded_by": to_uploader}
                if mine.get("blob"):
                    moved.append((image_id, mine["blob"], from_uploader, int(mine.get("size") or 0)))
            return versions

        self._rewrite_held(old, image_ids, moved_over)
        return moved

    def retire_uploaders(self, renamed: Callable[[str], str | None]) -> list[tuple[str, str, str, str, int]]:
        """Re-key every version whose uploader ``renamed`` maps to a new name (None: keep it),
        one transaction per shard that has any. Used for a deleted account's versions, which get
        a name no account can ever have, so a later account of the same name inherits none.

        Returns (image id, old uploader, new uploader, blob, size) of each re-keyed version that
        has a blob, whose blob use the caller moves over."""
        moved: list[tuple[str, str, str, str, int]] = []
        for prefix in self.shard_prefixes():
            datafile = self._store.tables.existing(self._store.db_dir / "images" / f"{prefix}.json")
            if datafile is None:
                continue
            docs = datafile.read_shared().get(TABLE, {})
            if not any(renamed(uploader) is not None for doc in docs.values() if not is_legacy(doc)
                       for uploader in doc["versions"]):
                continue
            with self._store.tables.transaction(datafile, TABLE) as images:
                changes: dict[str, dict[str, Version]] = {}
                for doc in images.all():
                    if is_legacy(doc):
                        continue
                    versions = dict(doc["versions"])
                    for uploader in list(versions):
                        new = renamed(uploader)
                        if new is None or new in versions:
                            continue
                        version = versions.pop(uploader)
                        versions[new] = {**version, "uploaded_by": new}
                        changes[doc["id"]] = versions
                        if version.get("blob"):
                            moved.append((doc["id"], uploader, new, version["blob"], int(version.get("size") or 0)))
                _apply(images, changes)
        return moved

    # -- uploads that never finished -------------------------------------------------------------
    def expire_pending(self, prefix: str) -> list[tuple[str, str, str]]:
        """Drop the versions of shard ``prefix`` whose upload did not complete within
        ``pending_seconds``; returns their (id, uploader, blob) for blob release."""
        path = self._store.db_dir / "images" / f"{prefix}.json"
        datafile = self._store.tables.existing(path)
        if datafile is None:
            return []
        cutoff = time.time() - self.pending_seconds
        docs = datafile.read_shared().get(TABLE, {})
        if not any(version["state"] != COMPLETE and version["updated_at"] < cutoff
                   for doc in docs.values() if not is_legacy(doc) for version in doc["versions"].values()):
            return []
        with self._store.tables.transaction(datafile, TABLE) as images:
            return self._expire_in(images, time.time(), keep=None)

    def _expire_in(self, images: Any, stamp: float, keep: tuple[str, str] | None) -> list[tuple[str, str, str]]:
        """Inside a shard's transaction: drop its expired pending versions (not ``keep``)."""
        cutoff = stamp - self.pending_seconds
        released: list[tuple[str, str, str]] = []
        changes: dict[str, dict[str, Version]] = {}
        for doc in images.all():
            if is_legacy(doc):
                continue
            image_id = doc["id"]
            versions = dict(doc["versions"])
            expired = [uploader for uploader, version in versions.items()
                       if version["state"] != COMPLETE and version["updated_at"] < cutoff
                       and (image_id, uploader) != keep]
            if not expired:
                continue
            for uploader in expired:
                blob = versions.pop(uploader).get("blob")
                if blob:
                    released.append((image_id, uploader, blob))
            changes[image_id] = versions
        _apply(images, changes)
        return released

    # -- blob references -----------------------------------------------------------------------
    def add_blob_user(self, digest: str, image_id: str, uploader: str, size: int,
                      commit: Callable[[], object]) -> None:
        """Count a version as a user of blob ``digest`` and run ``commit`` (which makes the
        blob exist) under the blob shard's lock, so a concurrent release cannot delete it."""
        with self._store.tables.transaction(self._blob_shard(digest), BLOB_TABLE) as blobs:
            doc = blobs.get(doc_id=digest)
            users = set(doc["users"]) if doc is not None else set()
            users.add(_blob_user(image_id, uploader))
            commit()
            blobs.upsert(Document({"users": sorted(users), "size": size}, doc_id=digest))

    def drop_blob_users(self, released: Iterable[tuple[str, str, str]],
                        delete: Callable[[str], object]) -> list[str]:
        """Those versions no longer use their blobs; a blob left without users is deleted
        (``delete`` runs under the blob shard's lock). Returns the deleted digests."""
        deleted = []
        for image_id, uploader, digest in released:
            with self._store.tables.transaction(self._blob_shard(digest), BLOB_TABLE) as blobs:
                doc = blobs.get(doc_id=digest)
                users = set(doc["users"]) if doc is not None else set()
                users.discard(_blob_user(image_id, uploader))
                if users:
                    blobs.upsert(Document({**doc, "users": sorted(users)}, doc_id=digest))
                    continue
                if doc is not None:
                    blobs.remove(doc_ids=[digest])
                delete(digest)
                deleted.append(digest)
        return deleted

    def prune_blob_users(self, digest: str, delete: Callable[[str], object]) -> bool:
        """Drop users of ``digest`` that no longer are versions using it (left by a process that
        died between removing a version and releasing its blob); delete the blob when none is
        left. True when it was deleted."""
        with self._store.tables.transaction(self._blob_shard(digest), BLOB_TABLE) as blobs:
            doc = blobs.get(doc_id=digest)
            users = []
            for user in (doc["users"] if doc is not None else []):
                image_id, _, uploader = user.partition("/")
                version = self.versions(image_id).get(uploader)
                # A version still in "json" state may be between add_blob_user and attach_layer.
                if version is not None and (version["blob"] == digest or version["state"] == JSON_STORED):
                    users.append(user)
            if users:
                if users != doc["users"]:
                    blobs.upsert(Document({**doc, "users": users}, doc_id=digest))
                return False
            if doc is not None:
                blobs.remove(doc_ids=[digest])
            delete(digest)
        return True

    def blob_users(self, digest: str) -> list[str]:
        hexdigest = digest.partition(":")[2]
        doc = self._store.tables.lookup(self._store.db_dir / "blobs" / f"{hexdigest[:2]}.json", BLOB_TABLE, digest)
        return list(doc["users"]) if doc is not None else []

    # -- the data dir of an older version --------------------------------------------------------
    def migrate_shard(self, prefix: str, converted: Callable[[str, dict[str, Any]], dict[str, Version] | None]) -> int:
        """Rewrite shard ``prefix``'s legacy records as versions: ``converted(id, record)``
        gives the versions (None or {}: the record goes). Returns how many were converted."""
        path = self._store.db_dir / "images" / f"{prefix}.json"
        count = 0
        with self._store.tables.transaction(self._store.tables.datafile(path), TABLE) as images:
            for doc in images.all():
                if not is_legacy(doc):
                    continue
                image_id = doc.doc_id
                versions = converted(image_id, dict(doc))
                if versions:
                    images.upsert(Document({"id": image_id, "versions": versions}, doc_id=image_id))
                else:
                    images.remove(doc_ids=[image_id])
                count += 1
        return count
