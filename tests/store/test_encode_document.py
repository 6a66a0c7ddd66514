"""encode_document: the bytes of json.dumps, without the peak of small objects it makes on a large table."""
from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from index.store.files import ENCODE_CHUNK, encode_document


def _record(n: int) -> dict[str, Any]:
    return {"pulls": n % 40, "pushes": 1, "last_push_by": f"user{n:06d}", "last_push": f"2026-01-1{n % 10}T00:00:00+00:00",
            "note": "é ☃ \"quoted\" \\ \n", "tags": [n, None, True, 1.5], "nested": {"n": n}}


@pytest.mark.parametrize("count", [0, 1, ENCODE_CHUNK - 1, ENCODE_CHUNK, ENCODE_CHUNK + 1, 3 * ENCODE_CHUNK, 2_000])
def test_same_bytes_as_json_dumps(count):
    document = {"_write": "0123456789abcdef", "repositories": {f"ns/app{n}": _record(n) for n in range(count)},
                "other": {"small": [1, 2]}, "scalar": 3, "text": "ünï"}
    assert encode_document(document) == json.dumps(document, separators=(",", ":")).encode("utf-8")


def test_same_bytes_with_several_large_tables_and_keys_that_are_not_strings():
    big = {f"k{n}": {"v": n} for n in range(ENCODE_CHUNK * 2 + 5)}
    for document in ({"a": big, "b": dict(big), "c": {}}, {"a": big, 1: "one"}, {"a": {n: n for n in range(600)}}):
        assert encode_document(document) == json.dumps(document, separators=(",", ":")).encode("utf-8")


def _peak(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_table_is_encoded_without_holding_its_pieces_at_once():
    # 6,000 records (a pull/push shard at 100,000 repositories has 6,250): json.dumps holds every
    # piece of the text before joining them; a chunk at a time holds little besides the result.
    document = {"_write": "0123456789abcdef", "repositories": {f"user{n:06d}/app{n % 50}": _record(n)
                                                                for n in range(6_000)}}
    size = len(encode_document(document))
    whole = _peak(lambda: json.dumps(document, separators=(",", ":")).encode("utf-8"))
    chunked = _peak(lambda: encode_document(document))
    assert chunked < 2.5 * size < whole, (size, chunked, whole)
