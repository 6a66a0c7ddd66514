"""The built-in registry's state: image records, layer files, and cleaning up after deletes."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Response

from ..names import RepoName
from ..payloads import json_response
from ..services import services
from ..store import Store
from ..store.images import COMPLETE, ImageStore
from ..store.records import RepositoryRecord
from . import access
from .layers import LayerFiles

log = logging.getLogger(__name__)


class Registry:
    """One per app; also the index's :class:`~index.services.RegistryHooks`."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.images = ImageStore(store)
        self.layers = LayerFiles(data_dir)

    # -- hooks the index calls ----------------------------------------------------------------
    def delete_repository(self, name: RepoName) -> Response:
        """Registry side of the delete flow (docs/protocol.md 8 step 2): tags and unshared layers go."""
        access.repository(name, "delete")
        self.forget(name)
        return json_response(True)

    def repository_removed(self, record: RepositoryRecord) -> None:
        """The index's final delete step: layers only that repository referenced go too."""
        self.collect(self._references_of(record), keep_for=None)

    # -- deleting -----------------------------------------------------------------------------
    def forget(self, name: RepoName) -> list[str]:
        """Drop a repository's tags, then the images no other repository references."""
        record = self.store.get_repository(name.namespace, name.repository)
        if record is None:
            return []
        candidates = self._references_of(record)
        self.store.delete_tags(name.namespace, name.repository)
        return self.collect(candidates, keep_for=name)

    def collect(self, candidates: Iterable[str], keep_for: RepoName | None) -> list[str]:
        """Remove the candidate images (records and layer files) that no repository still needs.

        ``keep_for`` is the repository being deleted (its own references do not count).
        Repositories in every state count, so a half-deleted one keeps what it shares.
        """
        candidates = set(candidates)
        if not candidates:
            return []
        # Every data file stays locked from the scan to the removal, so a push cannot announce
        # one of these images in between (it would then be told 200 for an image about to go).
        with self.store.lock_all():
            needed: set[str] = set()
            for record in self.store.iter_repositories():
                if keep_for is not None and (record["namespace"], record["name"]) == (
                        keep_for.namespace, keep_for.repository):
                    continue
                needed |= self._references_of(record)
            removed = self.images.remove(candidates - needed, self.layers.remove)
        if removed:
            log.info("removed %d image(s) no repository references: %s", len(removed), ", ".join(removed))
        return removed

    def _references_of(self, record: RepositoryRecord) -> set[str]:
        """The ids a repository needs: its announced images and the ancestry of its tags."""
        ids = {entry["id"] for entry in record.get("images", [])}
        for image_id in set(record.get("tags", {}).values()):
            found = self.images.get(image_id)
            ids |= set(found["ancestry"]) if found else {image_id}
        return ids

    def complete_image(self, image_id: str) -> dict[str, Any] | None:
        record = self.images.get(image_id)
        return record if record is not None and record["state"] == COMPLETE else None


def registry() -> Registry:
    """The current app's registry (its routes are only registered when there is one)."""
    found = services().registry
    assert isinstance(found, Registry)
    return found
