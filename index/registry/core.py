"""The built-in registry's state: image versions, blobs, and cleaning up after deletes."""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Response

from ..names import RepoName
from ..payloads import json_response
from ..services import services
from ..store import Store
from ..store.access import AccessStore
from ..store.images import ImageStore
from ..store.records import RepositoryRecord
from . import access
from .blobs import BlobStore
from .localblobs import LocalBlobs
from .tarsum import LayerLimits

log = logging.getLogger(__name__)

# Every write of an image json also looks at one other shard for expired uploads, in turn, so
# every shard is visited at least every 256 * this many seconds of write traffic.
EXPIRE_ROTATION_SECONDS = 10
# Joins a deleted account's name and id into the uploader name of its retired versions; no
# account, organization or robot name may hold it (index.names).
RETIRED_MARK = "~"


class Registry:
    """One per app; also the index's :class:`~index.services.RegistryHooks`."""

    def __init__(self, store: Store, data_dir: Path, config: dict[str, Any] | None = None,
                 blobs: BlobStore | None = None) -> None:
        config = config or {}
        self.store = store
        self.images = ImageStore(store, config.get("IMAGE_PENDING_SECONDS", 24 * 3600))
        self.blobs: BlobStore = blobs if blobs is not None else LocalBlobs(data_dir)
        self.data_dir = Path(data_dir)
        self.limits = LayerLimits(config.get("LAYER_MAX_BYTES", 0), config.get("LAYER_MAX_INFLATED_BYTES", 0),
                                  config.get("LAYER_MAX_RATIO", 0), config.get("LAYER_MAX_ENTRIES", 0))
        self.json_max_bytes: int = config.get("IMAGE_JSON_MAX_BYTES", 0)
        self.quota_bytes: int = config.get("NAMESPACE_QUOTA_BYTES", 0)

    # -- hooks the index calls ----------------------------------------------------------------
    def delete_repository(self, name: RepoName) -> Response:
        """Registry side of the delete flow (protocol.md 8 step 2): tags and unshared layers go."""
        access.repository(name, "delete")
        self.forget(name)
        return json_response(True)

    def repository_removed(self, record: RepositoryRecord) -> None:
        """The index's final delete step: what only that repository held goes too."""
        name = RepoName(record["namespace"], record["name"])
        self.release(name, self._references_of(name, record))

    def repository_moved(self, old: RepoName, record: RepositoryRecord) -> None:
        """A repository was moved (account deletion with transfer): the versions it held are
        now held under its new name, so its pulls and its later deletion still find them."""
        new = RepoName(record["namespace"], record["name"])
        # The old owner's uploads, and its robots' (they go with the account), become the new
        # owner's: else no writer of the moved repository would have uploaded them.
        robots = [robot["name"] for robot in AccessStore(self.store).list_robots(old.namespace)]
        moved = self.images.rename_ref(old.full, new.full, self._references_of(old, record),
                                       from_uploaders=[old.namespace, *robots], to_uploader=record["owner"])
        for image_id, blob, _, size in moved:
            self.images.add_blob_user(blob, image_id, record["owner"], size, commit=lambda: None)
        self._drop([(image_id, uploader, blob) for image_id, blob, uploader, _ in moved])

    def account_removed(self, username: str, account_id: str) -> int:
        """Account ``username`` (and so its robots) is gone: the versions they uploaded that are
        still held somewhere are re-keyed to ``<uploader>~<account id>``, a name no account can
        have, so a later account registered under the released name satisfies none of them
        (scope.py asks whether the *uploader* may write). They stay for reads by repositories
        that hold them, exactly as before. Returns how many of them had a layer."""
        suffix = f"{RETIRED_MARK}{account_id or secrets.token_hex(8)}"
        robots = f"{username}+"

        def renamed(uploader: str) -> str | None:
            if RETIRED_MARK in uploader or not (uploader == username or uploader.startswith(robots)):
                return None
            return uploader + suffix
        return self.retire(renamed)

    def principal_removed(self, name: str) -> int:
        """A robot (or another principal with its own name) is gone: its versions are retired
        like a deleted account's, so a new one of the same name satisfies none of them."""
        suffix = f"{RETIRED_MARK}{secrets.token_hex(8)}"
        return self.retire(lambda uploader: uploader + suffix if uploader == name else None)

    def retire(self, renamed: Callable[[str], str | None]) -> int:
        """Re-key versions (``ImageStore.retire_uploaders``), their blob uses following; returns
        how many of them had a layer."""
        moved = self.images.retire_uploaders(renamed)
        for image_id, _, new, blob, size in moved:
            self.images.add_blob_user(blob, image_id, new, size, commit=lambda: None)
        self._drop([(image_id, old, blob) for image_id, old, _, blob, _ in moved])
        return len(moved)

    # -- deleting -----------------------------------------------------------------------------
    def forget(self, name: RepoName) -> list[str]:
        """Drop a repository's tags, then the versions only it held; returns deleted blobs."""
        record = self.store.get_repository(name.namespace, name.repository)
        if record is None:
            return []
        candidates = self._references_of(name, record)
        self.store.delete_tags(name.namespace, name.repository)
        return self.release(name, candidates)

    def release(self, name: RepoName, image_ids: Iterable[str]) -> list[str]:
        """Repository ``name`` no longer holds these ids; versions no repository holds go, and
        blobs no version uses. Each step locks one shard briefly: nothing blocks other
        namespaces for the whole delete (it used to hold every write off while it scanned)."""
        released = self.images.release(name.full, image_ids)
        deleted = self._drop(released)
        if deleted:
            log.info("deleted %d blob(s) no image version uses after %s went", len(deleted), name.full)
        return deleted

    def _drop(self, released: list[tuple[str, str, str]]) -> list[str]:
        def delete(digest: str) -> None:
            with self.store.writing():  # a backup never sees a version whose blob is half gone
                self.blobs.delete(digest)
        return self.images.drop_blob_users(released, delete)

    def _references_of(self, name: RepoName, record: Mapping[str, Any]) -> set[str]:
        """The ids a repository may hold: its announced images, its tags, and the ancestry of
        every version of those that it holds (tags only point at announced images)."""
        ids = {entry["id"] for entry in record.get("images", [])} | set(record.get("tags", {}).values())
        for versions in self.images.versions_of(ids).values():
            for version in versions.values():
                if name.full in version["refs"]:
                    ids |= set(version["ancestry"])
        return ids

    # -- uploads that never finished ------------------------------------------------------------
    def expire_pending(self, prefixes: Iterable[str] | None = None) -> int:
        """Drop versions whose upload did not complete in time (``INDEX_IMAGE_PENDING_SECONDS``)
        in the given shards (all by default); returns how many blobs that freed."""
        released = []
        for prefix in (self.images.shard_prefixes() if prefixes is None else prefixes):
            released += self.images.expire_pending(prefix)
        return len(self._drop(released))

    def expire_one_shard(self) -> None:
        """The next shard in turn (see EXPIRE_ROTATION_SECONDS)."""
        self.expire_pending([f"{int(time.time() // EXPIRE_ROTATION_SECONDS) % 256:02x}"])

    def collect_garbage(self) -> int:
        """Delete blobs no image version uses (what a crash between two steps can leave);
        each blob is checked under its blob shard's lock. Returns how many were deleted."""
        def delete(digest: str) -> None:
            with self.store.writing():
                self.blobs.delete(digest)
        return sum(self.images.prune_blob_users(digest, delete) for digest in list(self.blobs.digests()))

    # -- storage used --------------------------------------------------------------------------
    def usage(self, namespace: str) -> int:
        """Bytes the versions held by ``namespace``'s repositories take (image json + layer);
        a version is counted once per namespace, also when several of its repositories hold it."""
        seen: set[tuple[str, str]] = set()
        total = 0
        prefix = namespace + "/"
        for record in self.store.iter_repositories(namespace):
            name = RepoName(record["namespace"], record["name"])
            for image_id, versions in self.images.versions_of(self._references_of(name, record)).items():
                for uploader, version in versions.items():
                    if (image_id, uploader) in seen or not any(ref.startswith(prefix) for ref in version["refs"]):
                        continue
                    seen.add((image_id, uploader))
                    total += len(version["json"].encode("utf-8")) + (version["size"] or 0)
        return total


def registry() -> Registry:
    """The current app's registry (its routes are only registered when there is one)."""
    found = services().registry
    assert isinstance(found, Registry)
    return found
