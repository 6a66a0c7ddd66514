"""Which requests the WSGI bridge may run on the event loop's own thread.

Handing a request to a request thread and its answer back to the event loop costs two thread
wake-ups and a write to the loop's wake-up pipe: a fifth of the server's CPU time for a trivial
ping (bench/README.md, "What the profile showed, and what changed"). The handshake's reads answer
from memory in well under a millisecond, so they run on the loop's thread instead; while one
runs, the worker's other connections wait exactly as they would for the GIL.

Only requests that cannot wait on anything qualify: no body, ``GET``/``HEAD`` on the routes below,
and no bcrypt to pay (Basic credentials that the credential cache remembers; robots' logins and
unknown credentials go to a thread). Writes (fsync, the store's lock), layers and image files
(disk or S3), ``/readyz`` (lock probe) and every other route run in request threads as before.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from ..passwords import VerifiedCredentials

QUICK_PATHS = re.compile(
    r"/v1/_ping|/_ping|/healthz|/v1/users/|/v1/search|/v1/repositories/(?:[^/]+/)?[^/]+/images")
QUICK_METHODS = frozenset({"GET", "HEAD"})


def quick_request_test(credentials: VerifiedCredentials) -> Callable[[dict[str, Any]], bool]:
    """``quick(environ)``: True when the request may run on the event loop's thread."""

    def quick(environ: dict[str, Any]) -> bool:
        if environ["REQUEST_METHOD"] not in QUICK_METHODS or not QUICK_PATHS.fullmatch(environ["PATH_INFO"]):
            return False
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization[:6].lower() != "basic ":
            return True  # anonymous, or a token: an HMAC check
        return remembered_basic(credentials, authorization[6:].strip())

    return quick


def remembered_basic(credentials: VerifiedCredentials, encoded: str) -> bool:
    """Basic credentials of a user (not a robot) that were verified recently."""
    try:
        username, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False  # the app answers these with a 401 in a thread, as before
    if colon and not username and not password:
        return True  # "Basic Og==": docker's anonymous caller
    return bool(colon) and "+" not in username and credentials.remembers(username, password)
