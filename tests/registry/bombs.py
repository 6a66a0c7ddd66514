"""Hostile layer bodies, built fast: a gzip bomb and a tar of very many empty entries."""
from __future__ import annotations

import struct
import tarfile
import time
import zlib

BLOCK = 512
PIECE = 16 << 20


def _gzip_header() -> bytes:
    return b"\x1f\x8b\x08\x00" + struct.pack("<I", int(time.time())) + b"\x00\xff"


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 1_400_000_000, 0o644
    return info.tobuf(tarfile.USTAR_FORMAT)


def gzip_bomb(inflated_mib: int = 1200) -> bytes:
    """A gzip'd tar of one file of zeros, ``inflated_mib`` MiB inflated, about 1 MiB sent.

    The deflate stream repeats one compressed 16 MiB piece of zeros: after a full flush the
    compressor starts afresh, so the same piece stands for every further 16 MiB.
    """
    size = inflated_mib * (1 << 20) - BLOCK
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(_tar_header("zeros", size) + bytes(PIECE - BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = compressor.compress(bytes(PIECE)) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeats = inflated_mib // 16 - 1
    tail = compressor.compress(bytes(2 * BLOCK)) + compressor.flush()
    crc = zlib.crc32(_tar_header("zeros", size))
    crc = zlib.crc32(bytes(PIECE - BLOCK), crc)
    piece_zeros = bytes(PIECE)
    for _ in range(repeats):
        crc = zlib.crc32(piece_zeros, crc)
    crc = zlib.crc32(bytes(2 * BLOCK), crc)
    total = PIECE * (repeats + 1) + 2 * BLOCK
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF)
    return _gzip_header() + first + zeros * repeats + tail + trailer


def many_entries(count: int) -> bytes:
    """A gzip'd tar of ``count`` empty files (headers only: 512 bytes each inflated)."""
    template = bytearray(_tar_header("f" + "0" * 9, 0))
    base_sum = sum(template[:148]) + sum(template[156:]) + 8 * 32 - sum(template[:10])
    parts = []
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    batch = bytearray()
    for number in range(count):
        name = b"f%09d" % number
        template[:10] = name
        template[148:156] = b"%06o\x00 " % (base_sum + sum(name))
        batch += template
        if len(batch) >= PIECE:
            parts.append(compressor.compress(bytes(batch)))
            batch.clear()
    batch += bytes(2 * BLOCK)
    parts.append(compressor.compress(bytes(batch)) + compressor.flush())
    return b"".join(parts)
