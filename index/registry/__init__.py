"""The built-in v1 registry (docs/protocol.md 10): image json, layers, checksums, ancestry, tags.

On by default, so one process is a complete private index + registry; off when
``INDEX_REGISTRY_ENDPOINTS`` names external registries (they then check tokens against the index).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..services import EXTENSION_KEY
from ..store.errors import StorageFailure
from . import images, tags
from .blobs import BlobStore
from .core import Registry
from .layers import STALE_UPLOAD_SECONDS
from .migrate import migrate_legacy, retire_orphans

__all__ = ["Registry", "install"]

log = logging.getLogger(__name__)


def _layer_storage(settings: Mapping[str, Any]) -> BlobStore | None:
    """S3 when INDEX_LAYER_STORAGE names a bucket (checked reachable and writable, else the
    ConfigError that stops the start); None: the data dir (LocalBlobs)."""
    if settings.get("LAYER_STORAGE") is None:
        return None
    from .s3blobs import S3Blobs  # boto3 is imported only when S3 is used
    return S3Blobs.from_settings(settings)


def install(app: Flask) -> Registry:
    """Create the app's registry, hook it into the index's routes and register its routes."""
    found = app.extensions[EXTENSION_KEY]
    registry = Registry(found.store, app.config["DATA_DIR"], app.config, blobs=_layer_storage(app.config))
    registry.blobs.remove_stale_uploads(STALE_UPLOAD_SECONDS)
    try:
        migrate_legacy(registry)
        retire_orphans(registry)
        registry.expire_pending()
    except StorageFailure as exc:  # a read-only data dir still serves reads (see Store.open)
        log.error("could not convert or clean up image records at start: %s", exc)
    found.registry = registry
    app.register_blueprint(images.bp)
    app.register_blueprint(tags.bp)
    return registry
