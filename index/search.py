"""``GET /v1/search``: repositories whose name or description contains the query."""
from __future__ import annotations

import functools
import math
import re
from typing import Any

from flask import Blueprint, Response
from werkzeug.datastructures import MultiDict

from . import auth, permissions
from .current import this_request
from .errors import BadRequest, json_body
from .names import LIBRARY, RepoName
from .payloads import JSON
from .services import services
from .store.records import Principal

bp = Blueprint("search", __name__)

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_QUERY_CHARS = 256
# ASCII digits only: int() would also take "١", "１", "1_0", "+5" and " 5".
_DIGITS_RE = re.compile(r"[0-9]{1,9}")
RESULTS_KEPT = 4096  # results kept as JSON text (a few hundred bytes each)


def _int_arg(args: MultiDict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    values = args.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"give {name} at most once")
    raw = values[0] if values else None
    if raw is None or raw == "":
        return default
    if not _DIGITS_RE.fullmatch(raw):
        raise BadRequest(f"{name} must be a whole number written with the digits 0-9, got {raw[:40]!r}")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be {bounds}, got {value}")
    return value


def _result(name: str, description: str) -> dict[str, Any]:
    # The types docker decodes strictly: ints as ints, bools as bools. As on the hub, the
    # admin-curated library namespace holds the official repositories (docker search: [OK]).
    # Library names are listed as "library/<name>", as docker-registry 0.9 did: third-party
    # tools split every result name on "/" (the docker client shows either form).
    return {"name": name, "description": description, "star_count": 0,
            "is_official": name.startswith(f"{LIBRARY}/"), "is_trusted": False, "is_automated": False}


@functools.lru_cache(maxsize=RESULTS_KEPT)
def _result_json(name: str, description: str) -> str:
    """One result as compact JSON: the same repositories come back in search after search."""
    return json_body(_result(name, description))


def find(query: str, offset: int, limit: int, viewer: Principal | None) -> tuple[int, list[tuple[str, str]]]:
    """Repositories matching ``query`` that ``viewer`` may see: (how many, the requested slice
    of (name, description)). The API and the web pages both answer from here."""
    # Matches the lower-cased query in "namespace/name" or the lower-cased description.
    # docker search sends Basic credentials when logged in: private repositories are found only
    # by those who may read them, and nothing else is counted.
    public_readable = viewer is not None or permissions.anonymous_reads_allowed()

    def visible(full: str, public: bool) -> bool:
        if public and public_readable:
            return True
        namespace, _, repository = full.partition("/")
        return permissions.can_read(viewer, RepoName(namespace, repository))

    found = services()
    return found.search.search(query.strip().lower(), offset, limit, visible, found.activity.recency())


@bp.get("/v1/search")
def search() -> Response:
    args = this_request().args
    query = args.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest(f"q must be at most {MAX_QUERY_CHARS} characters")
    page_size = _int_arg(args, "n", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_arg(args, "page", 1, 1, None)
    total, found = find(query, (page - 1) * page_size, page_size, auth.reader())
    # What json_body of the whole answer gives, with each result's JSON made once and kept.
    head = json_body({"query": query, "num_results": total, "num_pages": max(1, math.ceil(total / page_size)),
                      "page": page, "page_size": page_size})
    results = ",".join(_result_json(name, description) for name, description in found)
    return Response(f'{head[:-1]},"results":[{results}]}}', mimetype=JSON)
