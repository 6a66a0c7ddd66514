"""Reading JSON request bodies safely and writing JSON responses byte-exactly."""
from __future__ import annotations

import json
from typing import IO, Any

from flask import Response

from .current import this_app, this_request
from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, json_body

JSON = "application/json"
# Index bodies are two levels deep (a list of image objects), an image's json a few more; 32 is
# far past anything legitimate, and a parser's recursion limit is not a contract to lean on.
MAX_JSON_DEPTH = 32


def read_json() -> Any:
    """The request body parsed as JSON, or a 4xx that says what is wrong with it."""
    return read_json_raw()[1]


def read_json_raw() -> tuple[bytes, Any]:
    """``(body bytes, parsed JSON)``: for callers that must keep the exact bytes too.

    Real clients send ``application/json`` (sometimes with a charset, sometimes spelled
    ``Content-type``); a missing type is accepted too, a clearly different one is refused.
    """
    sent = this_request()
    mimetype = sent.mimetype
    if mimetype and mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"expected Content-Type: application/json, got {mimetype}")
    limit = this_app().config["MAX_JSON_BYTES"]
    if sent.content_length is not None and sent.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    raw = _read_up_to(sent.stream, limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if not raw.strip():
        raise BadRequest("request body is empty: expected JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise BadRequest(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return raw, data


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of the body: a server may hand a read fewer bytes than asked for
    (one chunk as it arrived), so read until the body ends or ``size`` is reached."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = stream.read(wanted)
        if not chunk:
            break
        parts.append(chunk)
        wanted -= len(chunk)
    return b"".join(parts)


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists/objects nest more than ``limit`` levels (iterative: no recursion to blow)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json_body(value), status=status, mimetype=JSON)


def empty_response(status: int) -> Response:
    return Response(b"", status=status, mimetype=JSON)
