"""What an operator wants to see of a repository: tags, images and their state, size, last push.

Image states come from the image versions this repository holds in the built-in registry:
``complete`` (served), ``json`` (no layer
yet), ``layer`` (layer stored, checksum never confirmed: a failed or interrupted push), or
``missing`` (announced to the index, never uploaded). With external registries (no built-in
one) the index knows no sizes or states: every image shows ``unknown``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..names import RepoName

COMPLETE = "complete"
MISSING = "missing"
UNKNOWN = "unknown"


@dataclass
class ImageSummary:
    id: str
    state: str
    size: int | None
    stored_at: str | None  # when its upload finished (the record's last change)


@dataclass
class RepositorySummary:
    name: RepoName
    record: Mapping[str, Any]
    tags: dict[str, str]
    images: list[ImageSummary] = field(default_factory=list)

    @property
    def incomplete(self) -> int:
        return sum(1 for image in self.images if image.state not in (COMPLETE, UNKNOWN))

    @property
    def stored_bytes(self) -> int:
        return sum(image.size or 0 for image in self.images if image.state == COMPLETE)

    @property
    def last_push(self) -> str | None:
        """When the newest of its images finished uploading (ISO time), if any did."""
        times = [image.stored_at for image in self.images if image.state == COMPLETE and image.stored_at]
        return max(times) if times else None


def summarize(record: Mapping[str, Any], registry: Any | None) -> RepositorySummary:
    """Join a repository record with the registry's image records (``registry`` may be None)."""
    summary = RepositorySummary(RepoName(record["namespace"], record["name"]), record,
                                dict(record.get("tags", {})))
    for entry in record.get("images", []):
        summary.images.append(_image(entry["id"], summary.name, registry))
    return summary


def _image(image_id: str, name: RepoName, registry: Any | None) -> ImageSummary:
    """The version of ``image_id`` this repository holds (the one its pulls get)."""
    if registry is None:
        return ImageSummary(image_id, UNKNOWN, None, None)
    held = [version for version in registry.images.versions(image_id).values() if name.full in version["refs"]]
    if not held:
        return ImageSummary(image_id, MISSING, None, None)
    found = min(held, key=lambda version: version["created_at"])
    return ImageSummary(image_id, found.get("state", UNKNOWN), found.get("size"),
                        found.get("updated") or found.get("created"))


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'; whole bytes below 1 KiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
