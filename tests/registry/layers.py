"""Test layers: real gzip'd tars, and their TarSum v0 computed from what was put in (not parsed)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field


@dataclass
class Entry:
    name: str                     # as written in the header ("dir/" for directories)
    content: bytes = b""
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    mtime: int = 1_400_000_000
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    linkname: str = ""


@dataclass
class Layer:
    """An image: its json bytes exactly as sent, and its layer body (gzip'd tar)."""

    image_id: str
    parent: str | None
    entries: list[Entry] = field(default_factory=list)
    tar_format: int = tarfile.PAX_FORMAT

    @property
    def json_bytes(self) -> bytes:
        data = {"id": self.image_id, "created": "2014-06-01T00:00:00Z", "container_config": {"Cmd": None}}
        if self.parent:
            data["parent"] = self.parent
        return json.dumps(data, separators=(",", ":")).encode()

    @property
    def tar_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=self.tar_format) as archive:
            for entry in self.entries:
                info = tarfile.TarInfo(entry.name)
                info.type, info.mode, info.mtime = entry.kind, entry.mode, entry.mtime
                info.uid, info.gid, info.uname, info.gname = entry.uid, entry.gid, entry.uname, entry.gname
                info.linkname = entry.linkname
                info.size = len(entry.content)
                archive.addfile(info, io.BytesIO(entry.content) if entry.content else None)
        return buffer.getvalue()

    @property
    def body(self) -> bytes:
        # mtime=0: a deterministic gzip stream, like Go's gzip writer.
        return gzip.compress(self.tar_bytes, compresslevel=6, mtime=0)

    @property
    def tarsum(self) -> str:
        """TarSum v0 from the entries' own values (docs/protocol.md 4.3): an oracle independent of parsing."""
        sums = {}
        for entry in self.entries:
            fields = [("name", entry.name), ("mode", str(entry.mode)), ("uid", str(entry.uid)),
                      ("gid", str(entry.gid)), ("size", str(len(entry.content))),
                      ("mtime", str(entry.mtime)), ("typeflag", entry.kind.decode()),
                      ("linkname", entry.linkname), ("uname", entry.uname), ("gname", entry.gname),
                      ("devmajor", "0"), ("devminor", "0")]
            digest = hashlib.sha256("".join(k + v for k, v in fields).encode() + entry.content)
            sums[entry.name.rstrip("/") or "/"] = digest.hexdigest()
        final = hashlib.sha256(self.json_bytes)
        for value in sorted(sums.values()):
            final.update(value.encode())
        return "tarsum+sha256:" + final.hexdigest()

    @property
    def payload_checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.json_bytes + b"\n" + self.body).hexdigest()


def chain(ids: list[str], *, salt: str = "") -> list[Layer]:
    """A parent-first chain of layers with a few directories, files and a symlink each."""
    layers = []
    parent = None
    for position, image_id in enumerate(ids):
        entries = [
            Entry(f"layer{position}/", kind=tarfile.DIRTYPE, mode=0o755),
            Entry(f"layer{position}/hello.txt", f"hello {position} {salt}\n".encode() * 50),
            Entry(f"layer{position}/" + "long-name-" * 12 + ".bin", bytes(range(256)) * (position + 3),
                  uname="root", gname="root", mode=0o600),
            Entry(f"layer{position}/link", kind=tarfile.SYMTYPE, linkname="hello.txt", mode=0o777),
        ]
        layers.append(Layer(image_id, parent, entries))
        parent = image_id
    return layers
