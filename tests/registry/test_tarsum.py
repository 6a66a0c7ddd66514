"""TarSum v0 and payload checksums, against sums computed from what was put into the tar."""
from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest

from index.registry.tarsum import LayerDigester, TarError, TarSum, go_path_clean

from .layers import Entry, Layer, chain

ID = "ab" * 32


def digest(json_bytes: bytes, body: bytes, piece: int = 1 << 20) -> tuple[str, str]:
    digester = LayerDigester(json_bytes)
    for start in range(0, len(body), piece):
        digester.update(body[start:start + piece])
    return digester.finish()


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("piece", [1, 511, 4096, 1 << 20])
def test_matches_the_oracle_in_any_chunking(tar_format, piece):
    layer = chain([ID])[0]
    layer.tar_format = tar_format
    assert digest(layer.json_bytes, layer.body, piece) == (layer.tarsum, layer.payload_checksum)


def test_ustar_prefix_long_names_hardlinks_and_devices():
    layer = Layer(ID, None, [
        Entry("p" * 60 + "/" + "n" * 60, b"prefixed name"),           # ustar splits into prefix/name
        Entry("hard", kind=tarfile.LNKTYPE, linkname="p" * 60 + "/" + "n" * 30),
        Entry("fifo", kind=tarfile.FIFOTYPE, mode=0o600, uid=1000, gid=1000, uname="u", gname="g"),
    ], tar_format=tarfile.USTAR_FORMAT)
    assert digest(layer.json_bytes, layer.body) == (layer.tarsum, layer.payload_checksum)


def test_a_repeated_name_keeps_only_the_last_sum_like_go():
    first = Layer(ID, None, [Entry("same", b"one"), Entry("same", b"two")])
    only_last = Layer(ID, None, [Entry("same", b"two")])
    assert digest(first.json_bytes, first.body)[0] == only_last.tarsum


def test_plain_uncompressed_tar_is_accepted_and_json_is_part_of_the_sum():
    layer = chain([ID])[0]
    assert digest(layer.json_bytes, layer.tar_bytes)[0] == layer.tarsum
    assert digest(b'{"id":"other"}', layer.tar_bytes)[0] != layer.tarsum


def test_empty_archive_sums_only_the_json():
    import hashlib
    layer = Layer(ID, None, [])
    assert digest(layer.json_bytes, layer.body)[0] == "tarsum+sha256:" + hashlib.sha256(layer.json_bytes).hexdigest()


def test_multi_member_gzip_is_read_to_the_end():
    layer = chain([ID])[0]
    raw = layer.tar_bytes
    body = gzip.compress(raw[:700]) + gzip.compress(raw[700:])
    assert digest(layer.json_bytes, body)[0] == layer.tarsum


@pytest.mark.parametrize("level", [0, 1, 9])
def test_every_deflate_block_kind_and_gzip_header_fields(level):
    """Stored, fixed and dynamic blocks; a gzip header with a file name and a modification time."""
    layer = chain([ID])[0]
    buffer = io.BytesIO()
    with gzip.GzipFile("layer.tar", "wb", compresslevel=level, fileobj=buffer, mtime=1_400_000_000) as body:
        body.write(layer.tar_bytes)
    assert digest(layer.json_bytes, buffer.getvalue(), 1000)[0] == layer.tarsum


@pytest.mark.parametrize("body, message", [
    (b"", "empty"),
    (b"x", "too short"),
    (b"\x1f\x8b" + b"garbage" * 10, "not valid gzip"),
    (b"not a tar archive at all" * 40, "tar header"),
])
def test_not_a_layer(body, message):
    with pytest.raises(TarError, match=message):
        digest(b"{}", body)


def test_truncated_gzip_and_truncated_tar():
    layer = chain([ID])[0]
    with pytest.raises(TarError, match="truncated"):
        digest(layer.json_bytes, layer.body[:-30])
    with pytest.raises(TarError, match="middle of an entry"):
        digest(layer.json_bytes, layer.tar_bytes[:1200])


@pytest.mark.slow
def test_decompression_output_is_bounded_per_step():
    # 64 MiB of zeros compress to ~64 KiB; the digester must not inflate it in one piece.
    bomb_tar = io.BytesIO()
    with tarfile.open(fileobj=bomb_tar, mode="w") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 64 << 20
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    body = zlib.compress(bomb_tar.getvalue())  # zlib framing is not gzip: refused cleanly
    with pytest.raises(TarError):
        digest(b"{}", body)
    seen = []
    original = TarSum.update

    def spy(self, data):
        seen.append(len(data))
        return original(self, data)

    TarSum.update = spy
    try:
        digest(b"{}", gzip.compress(bomb_tar.getvalue(), compresslevel=1))
    finally:
        TarSum.update = original
    assert max(seen) <= 1 << 20


@pytest.mark.parametrize("raw, clean", [("a/b/", "a/b"), ("./a", "a"), ("//a", "/a"), ("", "."),
                                        ("a/../b", "b"), ("/", "/")])
def test_go_path_clean(raw, clean):
    assert go_path_clean(raw) == clean


def test_header_checksums_unsigned_signed_and_wrong():
    """Header sums are taken in C (Adler-32's byte sum): the same verdicts as summing in Python,
    also for blocks full of high bytes (the most a sum can reach) and old signed-char sums."""
    import random

    from index.registry.tarsum import _byte_sum, _check_header_sum

    rng = random.Random(11)
    assert _byte_sum(b"\xff" * 256) == 255 * 256 and _byte_sum(b"") == 0
    for fill in (lambda: rng.randbytes(512), lambda: b"\xff" * 512, lambda: bytes(512)):
        block = bytearray(fill())
        block[148:156] = b" " * 8
        unsigned = sum(block)
        signed = unsigned - 256 * sum(1 for byte in block if byte > 127)
        for value, accepted in ((unsigned, True), (signed, True), (unsigned + 1, False)):
            if value < 0:  # all high bytes: no signed sum to write as octal
                continue
            block[148:156] = b"%07o\x00" % value if value < 8 ** 7 else b"\x80" + value.to_bytes(7, "big")
            if accepted:
                _check_header_sum(bytes(block))
            else:
                with pytest.raises(TarError, match="checksum"):
                    _check_header_sum(bytes(block))
