"""The built-in v1 registry (protocol.md 10): image json, layers, checksums, ancestry, tags.

On by default, so one process is a complete private index + registry; off when
``INDEX_REGISTRY_ENDPOINTS`` names external registries (they then check tokens against the index).
"""
from __future__ import annotations

from flask import Flask

from ..services import EXTENSION_KEY
from . import images, tags
from .core import Registry

__all__ = ["Registry", "install"]


def install(app: Flask) -> Registry:
    """Create the app's registry, hook it into the index's routes and register its routes."""
    found = app.extensions[EXTENSION_KEY]
    registry = Registry(found.store, app.config["DATA_DIR"])
    registry.layers.remove_stale_uploads()
    found.registry = registry
    app.register_blueprint(images.bp)
    app.register_blueprint(tags.bp)
    return registry
