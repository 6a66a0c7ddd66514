"""Reading the registry's files as a test sees them: image versions and their blobs on disk."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


@dataclass(frozen=True)
class BucketObject:
    """A blob in the S3 bucket, with the two questions tests ask of a blob file."""

    blobs: Any  # index.registry.s3blobs.S3Blobs over the server's bucket
    digest: str

    @property
    def name(self) -> str:
        return self.digest.partition(":")[2]  # as a blob file is named

    def exists(self) -> bool:
        return self.blobs.exists(self.digest)

    def read_bytes(self) -> bytes:
        return self.blobs.client.get_object(Bucket=self.blobs.bucket, Key=self.blobs.key(self.digest))["Body"].read()


def layer_file(data_dir: Path, image_id: str, uploader: str | None = None, s3: Any = None) -> Path | BucketObject:
    """The blob of ``uploader``'s version (the only version when None): its file, or its object
    when ``s3`` (an S3Blobs) holds the layers; one that does not exist when there is no such
    version or it has no layer."""
    found = versions(data_dir, image_id)
    if uploader is None and len(found) == 1:
        uploader = next(iter(found))
    version = found.get(uploader or "")
    if not version or not version.get("blob"):
        if s3 is not None:
            return BucketObject(s3, "sha256:" + "0" * 64)
        return Path(data_dir) / "blobs" / "missing" / f"{image_id}-{uploader}"
    if s3 is not None:
        return BucketObject(s3, version["blob"])
    return blob_path(data_dir, version["blob"])


def unfinished_uploads(data_dir: Path, s3: Any = None) -> list[str]:
    """Temp files of uploads in the data dir, or temporary objects and multipart uploads in S3."""
    if s3 is not None:
        return s3.temporary_objects()
    return [str(path) for path in (Path(data_dir) / "uploads").glob("*.part")]


def blob_files(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / "blobs" / "sha256"
    return sorted(folder.glob("??/*")) if folder.exists() else []
