"""Reading JSON request bodies safely and writing JSON responses byte-exactly."""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from flask import Response, current_app, request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, json_body
from .names import RepoName
from .services import services
from .store import generation_of

JSON = "application/json"
# A bare host[:port] as docker expects in X-Docker-Endpoints. Wider than Werkzeug's own host check,
# which refuses "_" (compose service names such as "docker_index:5000" are real hosts to docker).
PLAIN_HOST_RE = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
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
    mimetype = request.mimetype
    if mimetype and mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"expected Content-Type: application/json, got {mimetype}")
    limit = current_app.config["MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    raw = request.stream.read(limit + 1)
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


def endpoints() -> list[str]:
    """Registry hosts for ``X-Docker-Endpoints``: configured ones, else the public host, else
    the host this request was sent to (as seen through trusted proxies).

    A Host header that is no bare host[:port] is a 400: the client would build ``http:///v1/``
    from an empty value. Views that write call this first, so such a request changes nothing.
    """
    config = services().config
    if config["REGISTRY_ENDPOINTS"]:
        return list(config["REGISTRY_ENDPOINTS"])
    if config["PUBLIC_HOST"]:
        return [config["PUBLIC_HOST"]]
    host = request.host or request.headers.get("Host", "")
    if not PLAIN_HOST_RE.fullmatch(host):
        raise BadRequest(f"the Host header {host[:80]!r} is not a host[:port] that a registry endpoint can be "
                         "named by; send a plain Host header or set INDEX_PUBLIC_HOST or INDEX_REGISTRY_ENDPOINTS")
    return [host]


def add_endpoints(response: Response, hosts: Iterable[str] | None = None) -> Response:
    # One header line per endpoint: docker 0.7-0.10 read each line as one endpoint.
    for host in (endpoints() if hosts is None else hosts):
        response.headers.add("X-Docker-Endpoints", host)
    return response


def add_token(response: Response, name: RepoName, access: str,
              user: Mapping[str, Any] | str | None, hosts: Iterable[str] | None = None, *,
              delete_id: str | None = None) -> Response:
    """The token headers of protocol.md 4.1/5/8, plus the endpoints that accept the token
    (``hosts``: what :func:`endpoints` returned earlier in this request).

    ``user`` is the account record the request was authorized as (a username is looked up again),
    None for an anonymous reader; the token carries that account's generation. A delete token
    carries the repository's ``delete_id`` (see ``Store.mark_deleting``).
    """
    found = services()
    if isinstance(user, str):
        record = found.store.find_user(user)
        if record is None:
            raise ValueError(f"no account {user!r} to issue a token to")
        user = record
    username = user["username"] if user is not None else None
    generation = generation_of(dict(user)) if user is not None else None
    token = found.signer.issue(name.full, access, username, generation=generation, delete_id=delete_id)
    # add, not set: the response is new and has none of these yet (set scans for old values).
    response.headers.add("X-Docker-Token", token)
    response.headers.add("WWW-Authenticate", f"Token {token}")
    response.headers.add("Cache-Control", "no-store")
    return add_endpoints(response, hosts)
