"""TarSum v0 (``tarsum+sha256:``) and the payload checksum, computed while a layer streams in.

The client computes TarSum over the tar headers as Go's ``archive/tar`` (Go 1.1-1.3) parses them
(docs/protocol.md 4.3). Python's ``tarfile`` normalises names (it drops a directory's trailing ``/``),
which would change the sum, so this module reads the 512-byte headers itself, fed chunk by chunk:
memory stays flat whatever the layer's size. Nothing here knows about Flask.
"""
from __future__ import annotations

import hashlib
import posixpath
import zlib  # only its adler32, for header checksums (inflating is ISA-L's, below)
from dataclasses import dataclass
from typing import Any

# ISA-L's inflate: the same API and output as zlib's, about twice as fast on compressed layers
# (bench/README.md), and it too releases the GIL while it works.
from isal import isal_zlib

BLOCK = 512
GZIP_MAGIC = b"\x1f\x8b"
# Output bound per decompress call, so a tiny "zip bomb" chunk cannot expand in memory.
MAX_INFLATE = 1 << 20
MAX_META_BYTES = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS


class TarError(ValueError):
    """The layer is not a readable (gzip'd) tar archive."""


class LayerRefused(ValueError):
    """The layer is a readable archive, but past a limit of :class:`LayerLimits` (a 413)."""


@dataclass(frozen=True)
class LayerLimits:
    """What one layer may cost the server (0 = no limit); see the ``INDEX_LAYER_*`` settings."""

    max_bytes: int = 0           # the body as sent
    max_inflated_bytes: int = 0  # the tar stream after gunzip
    max_ratio: int = 0           # inflated / sent, checked once RATIO_FLOOR bytes are inflated
    max_entries: int = 0         # tar headers (files, directories, links, metadata entries)


# Below this many inflated bytes the ratio is not checked: a small layer of zeros is fine.
RATIO_FLOOR = 64 << 20


def go_path_clean(name: str) -> str:
    """Go's ``path.Clean``: like posixpath.normpath, but a leading ``//`` becomes ``/``."""
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _c_string(raw: bytes) -> str:
    end = raw.find(b"\x00")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if raw and raw[0] & 0x80:
        value = raw[0] & 0x7F
        for byte in raw[1:]:
            value = value << 8 | byte
        return value
    text = raw.strip(b" \x00")
    end = text.find(b"\x00")
    text = text if end < 0 else text[:end]
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"bad numeric field {raw!r} in a tar header") from None


def _byte_sum(data: bytes) -> int:
    """``sum(data)`` for at most 256 bytes, in C and ~20x faster than sum() on a header: the low
    half of Adler-32 is 1 + the byte sum modulo 65521, and 256 bytes sum to at most 65280."""
    return (zlib.adler32(data) & 0xFFFF) - 1


def _check_header_sum(block: bytes) -> None:
    recorded = _number(block[148:156])
    # The sum of every byte with the checksum field itself counted as 8 spaces.
    unsigned = _byte_sum(block[:256]) + _byte_sum(block[256:]) - sum(block[148:156]) + 32 * 8
    if recorded == unsigned:
        return
    # Some old tar writers summed signed chars; Go accepts either.
    high = sum(1 for byte in block[:148] + block[156:] if byte > 127)
    if recorded != unsigned - 256 * high:
        raise TarError("tar header checksum does not match: not a tar archive, or a damaged one")


def parse_header(block: bytes) -> dict[str, Any]:
    """The fields of one header block as Go's tar reader of that era returns them."""
    _check_header_sum(block)
    typeflag = block[156:157]
    header: dict[str, Any] = {
        "name": _c_string(block[0:100]),
        "mode": _number(block[100:108]),
        "uid": _number(block[108:116]),
        "gid": _number(block[116:124]),
        "size": _number(block[124:136]),
        "mtime": _number(block[136:148]),
        "typeflag": typeflag,
        "linkname": _c_string(block[157:257]),
        "uname": "", "gname": "", "devmajor": 0, "devminor": 0,
    }
    magic = block[257:265]
    if magic in (b"ustar\x0000", b"ustar  \x00"):
        header["uname"] = _c_string(block[265:297])
        header["gname"] = _c_string(block[297:329])
        if typeflag in (b"3", b"4"):  # Go reads device numbers of char and block devices only
            header["devmajor"] = _number(block[329:337])
            header["devminor"] = _number(block[337:345])
        star = magic == b"ustar\x0000" and block[508:512] == b"tar\x00"
        prefix = _c_string(block[345:476] if star else block[345:500])
        if prefix:
            header["name"] = prefix + "/" + header["name"]
    return header


def parse_pax(data: bytes) -> dict[str, str]:
    """The ``"<len> key=value\\n"`` records of a PAX extended header."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        try:
            length = int(data[position:space]) if space > position else 0
        except ValueError:
            length = 0
        record = data[space + 1:position + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise TarError("malformed PAX extended header in the layer")
        key, value = record[:-1].split(b"=", 1)
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def pax_overrides(pax: dict[str, str]) -> dict[str, Any]:
    """The header fields a PAX record replaces, as Go's ``mergePAX`` applies them."""
    fields: dict[str, Any] = {}
    for key, field in (("path", "name"), ("linkpath", "linkname"), ("uname", "uname"),
                       ("gname", "gname")):
        if key in pax:
            fields[field] = pax[key]
    try:
        for key in ("uid", "gid", "size"):
            if key in pax:
                fields[key] = int(pax[key])
        if "mtime" in pax:
            fields["mtime"] = int(pax["mtime"].split(".", 1)[0])
    except ValueError:
        raise TarError("bad number in a PAX extended header") from None
    return fields


def encode_header(header: dict[str, Any]) -> bytes:
    """The bytes TarSum v0 hashes for a header (docs/protocol.md 4.3), in Go's field order."""
    text = (f"name{header['name']}mode{header['mode']}uid{header['uid']}gid{header['gid']}"
            f"size{header['size']}mtime{header['mtime']}typeflag{header['typeflag'].decode('latin-1')}"
            f"linkname{header['linkname']}uname{header['uname']}gname{header['gname']}"
            f"devmajor{header['devmajor']}devminor{header['devminor']}")
    return text.encode("utf-8", "surrogateescape")


class TarSum:
    """Feed the uncompressed tar stream to :meth:`update`; :meth:`digest` gives TarSum v0."""

    # Entries whose content describes the next header rather than being a file of their own.
    _META = {b"x": "pax", b"L": "longname", b"K": "longlink"}

    def __init__(self, max_entries: int = 0) -> None:
        self._max_entries = max_entries
        self._entries = 0
        # Raw 32-byte digests, not hex (half the memory per entry): raw bytes sort in the same
        # order as their hex spelling, which is what TarSum sorts.
        self._sums: dict[str, bytes] = {}
        self._pending = bytearray()   # an incomplete header block, or a metadata entry's content
        self._state = "header"        # header | content | meta | padding | end
        self._remaining = 0           # content bytes left in the current entry
        self._padding = 0
        self._entry_hash = hashlib.sha256()
        self._entry_name = ""
        self._meta_kind = ""
        self._overrides: dict[str, Any] = {}
        self._zero_blocks = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._state != "end":  # Go ignores whatever follows the end marker
            if self._state == "content":
                take = min(self._remaining, len(view))
                self._entry_hash.update(view[:take])
                self._remaining -= take
                view = view[take:]
                if self._remaining == 0:
                    self._finish_entry()
            elif self._state == "meta":
                take = min(self._remaining, len(view))
                self._pending += view[:take]
                self._remaining -= take
                view = view[take:]
                if self._remaining == 0:
                    self._finish_meta()
            elif self._state == "padding":
                take = min(self._padding, len(view))
                self._padding -= take
                view = view[take:]
                if self._padding == 0:
                    self._state = "header"
            elif not self._pending and len(view) >= BLOCK:  # a whole header block at hand
                block = bytes(view[:BLOCK])
                view = view[BLOCK:]
                self._header(block)
            else:
                take = min(BLOCK - len(self._pending), len(view))
                self._pending += view[:take]
                view = view[take:]
                if len(self._pending) == BLOCK:
                    block = bytes(self._pending)
                    self._pending.clear()
                    self._header(block)

    def _header(self, block: bytes) -> None:
        if block == _ZERO_BLOCK:
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._state = "end"
            return
        if self._zero_blocks:
            raise TarError("a zero block followed by a header: damaged tar archive")
        # Counted before anything is kept for the entry: memory grows with the entries (one sum
        # per name), so the limit is what bounds it.
        self._entries += 1
        if self._max_entries and self._entries > self._max_entries:
            raise LayerRefused(f"the layer holds more than {self._max_entries} tar entries "
                               f"(INDEX_LAYER_MAX_ENTRIES)")
        header = parse_header(block)
        header.update(self._overrides)
        size = header["size"]
        if size < 0:
            raise TarError("negative entry size in a tar header")
        self._padding = -size % BLOCK
        self._remaining = size
        kind = self._META.get(header["typeflag"])
        if kind is not None:
            if size > MAX_META_BYTES:
                raise TarError("a tar metadata entry is too large")
            self._meta_kind, self._state = kind, "meta"
            if size == 0:
                self._finish_meta()
            return
        self._overrides = {}
        self._entry_hash = hashlib.sha256(encode_header(header))
        # Go keeps one sum per cleaned name (a map): a repeated name replaces the earlier one.
        self._entry_name = go_path_clean(header["name"])
        self._state = "content"
        if size == 0:
            self._finish_entry()

    def _finish_meta(self) -> None:
        data = bytes(self._pending)
        self._pending.clear()
        if self._meta_kind == "pax":
            self._overrides.update(pax_overrides(parse_pax(data)))
        elif self._meta_kind == "longname":
            self._overrides["name"] = _c_string(data)
        else:
            self._overrides["linkname"] = _c_string(data)
        self._state = "padding" if self._padding else "header"

    def _finish_entry(self) -> None:
        self._sums[self._entry_name] = self._entry_hash.digest()
        self._state = "padding" if self._padding else "header"

    def check_complete(self) -> None:
        """Raise TarError if the stream stopped inside an entry (a truncated archive)."""
        if self._state in ("content", "meta", "padding") or self._pending:
            raise TarError("the tar archive ends in the middle of an entry: the layer is truncated")

    def digest(self, image_json: bytes) -> str:
        """``tarsum+sha256:<hex>`` of what was fed, with the image json as Go's ``extra``."""
        final = hashlib.sha256(image_json)
        for entry_sum in sorted(self._sums.values()):
            final.update(entry_sum.hex().encode("ascii"))
        return "tarsum+sha256:" + final.hexdigest()


class LayerTarSum:
    """TarSum v0 of a layer body as sent: a gzip'd tar (what docker sends) or a plain tar."""

    def __init__(self, image_json: bytes, limits: LayerLimits | None = None) -> None:
        self.image_json = image_json
        self._limits = limits or LayerLimits()
        self._tarsum = TarSum(self._limits.max_entries)
        self._compressed = 0       # body bytes inflated so far
        self._inflated = 0
        self._inflate: Any = None
        self._mode = ""            # "" until two bytes tell gzip from plain tar
        self._head = bytearray()
        self._trailing = False

    def update(self, chunk: bytes) -> None:
        if not self._mode:
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = bytes(self._head), bytearray()
            self._mode = "gzip" if chunk[:2] == GZIP_MAGIC else "tar"
            if self._mode == "gzip":
                self._inflate = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        if self._mode == "tar":
            self._tarsum.update(chunk)
        else:
            self._gunzip(chunk)

    def _gunzip(self, data: bytes) -> None:
        while data and not self._trailing:
            if self._inflate.eof:
                if data[:2] != GZIP_MAGIC:
                    self._trailing = True  # bytes after the gzip stream: ignored, as Go's reader does
                    return
                self._inflate = isal_zlib.decompressobj(wbits=_GZIP_WBITS)  # a further gzip member
            try:
                out = self._inflate.decompress(data, MAX_INFLATE)
            except isal_zlib.error as exc:  # type: ignore[misc]  # isal's stub calls it an instance
                raise TarError(f"the layer is not valid gzip data: {exc}") from None
            left = self._inflate.unused_data if self._inflate.eof else self._inflate.unconsumed_tail
            self._compressed += len(data) - len(left)  # what this output was inflated from
            data = left
            if out:
                self._inflated += len(out)
                self._check_inflated()
                self._tarsum.update(out)

    def _check_inflated(self) -> None:
        """Refuse a gzip bomb as it inflates, long before it costs seconds of CPU."""
        limits = self._limits
        if limits.max_inflated_bytes and self._inflated > limits.max_inflated_bytes:
            raise LayerRefused(f"the layer inflates to more than {limits.max_inflated_bytes} bytes "
                               f"(INDEX_LAYER_MAX_INFLATED_BYTES)")
        if (limits.max_ratio and self._inflated > RATIO_FLOOR
                and self._inflated > limits.max_ratio * self._compressed):
            raise LayerRefused(f"the layer inflates more than {limits.max_ratio} times its size "
                               f"(INDEX_LAYER_MAX_RATIO): a compression bomb, not an image")

    def finish(self) -> str:
        """``tarsum+sha256:<hex>``; TarError if the archive is truncated or not one."""
        if not self._mode:
            raise TarError("the layer is empty or too short: expected a gzip'd tar archive")
        if self._mode == "gzip" and not self._inflate.eof:
            raise TarError("the gzip stream ends early: the layer upload is truncated")
        self._tarsum.check_complete()
        return self._tarsum.digest(self.image_json)


class PayloadChecksum:
    """docker 0.10+'s ``X-Docker-Checksum-Payload``: sha256(json + "\n" + the layer body as sent)."""

    def __init__(self, image_json: bytes) -> None:
        self.size = 0
        self._hash = hashlib.sha256(image_json + b"\n")

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._hash.update(chunk)

    def finish(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class LayerDigester:
    """Both checksums of a layer body in one pass (one thread): ``finish() -> (tarsum, payload)``."""

    def __init__(self, image_json: bytes) -> None:
        self._payload = PayloadChecksum(image_json)
        self._tarsum = LayerTarSum(image_json)

    @property
    def size(self) -> int:
        return self._payload.size

    def update(self, chunk: bytes) -> None:
        self._payload.update(chunk)
        self._tarsum.update(chunk)

    def finish(self) -> tuple[str, str]:
        return self._tarsum.finish(), self._payload.finish()
