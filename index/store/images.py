"""Image records of the built-in registry, sharded by the id's first two hex digits.

    <data dir>/db/images/<00..ff>.json   id -> record

A record is the image json exactly as uploaded, its parent and ancestry, and the state of its
upload: ``json`` (json stored), ``layer`` (layer stored, checksums computed), ``complete``
(checksum confirmed by the client). Only complete images are served. The layer file itself is
handled by :mod:`index.registry.layers`; the caller passes a function that moves it into place,
and it runs under the shard's lock so the record and the file always change together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from tinydb.table import Document

from . import Store
from .errors import ImageConflict, RecordNotFound
from .files import DataFile
from .records import json_copy, now

JSON_STORED = "json"
LAYER_STORED = "layer"
COMPLETE = "complete"
TABLE = "images"


class ImageStore:
    """Image records, on the index's Store (same locks, same durable files)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _shard_path(self, image_id: str) -> Path:
        # image ids are validated as 64 lower-case hex digits before they get here.
        return self._store.db_dir / "images" / f"{image_id[:2]}.json"

    def _shard(self, image_id: str) -> DataFile:
        return self._store.tables.datafile(self._shard_path(image_id))

    def get(self, image_id: str) -> dict[str, Any] | None:
        doc = self._store.tables.lookup(self._shard_path(image_id), TABLE, image_id)
        return json_copy(doc) if doc is not None else None

    def ids(self) -> list[str]:
        """Every image id with a record, in any state (for garbage collection)."""
        found: list[str] = []
        for shard in sorted((self._store.db_dir / "images").glob("??.json")):
            datafile = self._store.tables.existing(shard)
            if datafile is not None:
                found.extend(datafile.read_shared().get(TABLE, {}))
        return found

    def put_json(self, image_id: str, raw_json: str, parent: str | None,
                 on_reset: Callable[[], None]) -> dict[str, Any]:
        """Store (or replace) the json of an image that is not complete yet.

        The parent must be complete; its ancestry is copied. A replaced json makes any layer
        stored for the old json worthless, so ``on_reset`` removes it under the lock.
        Raises ImageConflict for a complete image, RecordNotFound for a missing parent.
        """
        existing = self.get(image_id)
        if existing is not None and existing["state"] == COMPLETE:
            raise ImageConflict()
        ancestry = [image_id]
        if parent is not None:
            parent_record = self.get(parent)
            if parent_record is None or parent_record["state"] != COMPLETE:
                raise RecordNotFound(f"parent image {parent} does not exist in this registry")
            ancestry += parent_record["ancestry"]
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            if doc is not None and doc["state"] == COMPLETE:
                raise ImageConflict()
            record = {"id": image_id, "json": raw_json, "parent": parent, "ancestry": ancestry,
                      "state": JSON_STORED, "size": None, "checksum": None,
                      "payload_checksum": None, "created": now()}
            images.upsert(Document(record, doc_id=image_id))
            if doc is not None and doc["state"] == LAYER_STORED:
                on_reset()  # after the record no longer points at the file
        return json_copy(record)

    def attach_layer(self, image_id: str, raw_json: str, size: int, checksum: str,
                     payload_checksum: str, move_into_place: Callable[[], None]) -> dict[str, Any]:
        """Record an uploaded layer computed against ``raw_json``; runs ``move_into_place`` locked.

        Raises ImageConflict if the image became complete meanwhile, RecordNotFound if its json is gone
        or was replaced during the upload.
        """
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            if doc is None:
                raise RecordNotFound(f"image {image_id} has no json: upload the json first")
            if doc["state"] == COMPLETE:
                raise ImageConflict()
            if doc["json"] != raw_json:
                raise ImageConflict("the image json changed during the layer upload; upload again")
            move_into_place()
            record = {**doc, "state": LAYER_STORED, "size": size, "checksum": checksum,
                      "payload_checksum": payload_checksum, "updated": now()}
            images.upsert(Document(record, doc_id=image_id))
        return json_copy(record)

    def mark_complete(self, image_id: str, checksum: str, payload_checksum: str) -> dict[str, Any]:
        """Complete the image if it still holds the layer these checksums were verified against."""
        with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
            doc = images.get(doc_id=image_id)
            if doc is None:
                raise RecordNotFound(f"image {image_id} not found")
            if doc["state"] == COMPLETE:
                raise ImageConflict()
            if (doc["state"] != LAYER_STORED or doc["checksum"] != checksum
                    or doc["payload_checksum"] != payload_checksum):
                raise ImageConflict("the image's layer changed during the checksum check; upload again")
            record = {**doc, "state": COMPLETE, "updated": now()}
            images.upsert(Document(record, doc_id=image_id))
        return json_copy(record)

    def remove(self, image_ids: Iterable[str], remove_file: Callable[[str], None]) -> list[str]:
        """Delete records, then their layer files; returns the removed ids.

        Callers hold every write off (``Store.lock_all``), so nothing re-creates an image between
        its record's removal and its file's.
        """
        removed = []
        for image_id in sorted(set(image_ids)):
            with self._store.tables.transaction(self._shard(image_id), TABLE) as images:
                present = images.contains(doc_id=image_id)
                if present:
                    images.remove(doc_ids=[image_id])
            if present:
                # Only once the record's removal is on disk (the transaction wrote it on exit):
                # a failure in between leaves a stray file, never a record pointing at nothing.
                remove_file(image_id)
                removed.append(image_id)
        return removed
