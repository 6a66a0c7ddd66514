"""Tags and layer histories of a repository, read from the built-in registry's image records."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..names import RepoName
from ..registry import scope
from ..services import services


def _registry() -> Any:
    return services().registry


def _image(name: RepoName, image_id: str) -> dict[str, Any] | None:
    """The complete version of ``image_id`` that pulls of ``name`` get (what its writers
    uploaded, see index.registry.scope), or None."""
    registry = _registry()
    if registry is None:
        return None
    version: dict[str, Any] | None = registry.images.find(image_id, scope.for_repository(name, None).satisfies)
    return version


def _parsed(record: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(record["json"])
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _command(data: dict[str, Any]) -> str:
    """What made the layer: the image json's ``container_config.Cmd`` (a list or a string)."""
    config = data.get("container_config")
    command = config.get("Cmd") if isinstance(config, dict) else None
    if isinstance(command, list):
        return " ".join(str(part) for part in command)
    return str(command) if command else ""


def tag_rows(name: RepoName, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per tag: image id, created time, total size (the layers of its whole ancestry)."""
    rows = []
    for tag, image_id in sorted(record.get("tags", {}).items()):
        image = _image(name, image_id)
        total = None
        created = None
        if image is not None:
            created = _parsed(image).get("created")
            sizes = [(_image(name, layer) or {}).get("size") for layer in image.get("ancestry", [image_id])]
            total = sum(size for size in sizes if isinstance(size, int))
        rows.append({"tag": tag, "image_id": image_id, "created": created, "size": total})
    return rows


def history(name: RepoName, record: Mapping[str, Any], tag: str) -> list[dict[str, Any]] | None:
    """The tag's ancestry, newest first: id, size and the command of each layer."""
    image_id = record.get("tags", {}).get(tag)
    if image_id is None:
        return None
    top = _image(name, image_id)
    layers = []
    for layer_id in (top or {}).get("ancestry", [image_id]):
        layer = _image(name, layer_id)
        data = _parsed(layer) if layer else {}
        layers.append({"id": layer_id, "size": layer.get("size") if layer else None,
                       "created": data.get("created"), "command": _command(data)})
    return layers
