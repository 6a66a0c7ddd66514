"""Reading the registry's files as a test sees them: image versions and their blobs on disk."""
from __future__ import annotations

import json
from pathlib import Path


def versions(data_dir: Path, image_id: str) -> dict:
    """uploader -> version of ``image_id`` ({} when the id has none)."""
    shard = Path(data_dir) / "db" / "images" / f"{image_id[:2]}.json"
    if not shard.exists():
        return {}
    doc = json.loads(shard.read_text()).get("images", {}).get(image_id)
    return doc["versions"] if doc else {}


def blob_path(data_dir: Path, digest: str) -> Path:
    hexdigest = digest.partition(":")[2]
    return Path(data_dir) / "blobs" / "sha256" / hexdigest[:2] / hexdigest


def layer_file(data_dir: Path, image_id: str, uploader: str | None = None) -> Path:
    """The blob file of ``uploader``'s version (the only version when None); a path that does
    not exist when there is no such version or it has no layer."""
    found = versions(data_dir, image_id)
    if uploader is None and len(found) == 1:
        uploader = next(iter(found))
    version = found.get(uploader or "")
    if not version or not version.get("blob"):
        return Path(data_dir) / "blobs" / "missing" / f"{image_id}-{uploader}"
    return blob_path(data_dir, version["blob"])


def blob_files(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / "blobs" / "sha256"
    return sorted(folder.glob("??/*")) if folder.exists() else []
