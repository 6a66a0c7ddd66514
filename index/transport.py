"""What every request and response goes through: TLS for credentials, raw-path checks, headers."""
from __future__ import annotations

import ipaddress
import re

from flask import Flask, Response, request

from .current import this_app, this_request
from .errors import BadRequest, Forbidden

# A percent-encoded "/" or "\" would turn into a separator after routing decoded it, and a NUL
# has no business in a name: refuse them on the raw URI, before anything reads the path.
_ENCODED_SEPARATOR_RE = re.compile(r"%(?:2f|5c|00)", re.IGNORECASE)

# Every response is JSON or a blob: nothing may run, be framed or load anything.
CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000"
_ALWAYS_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
                   ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"))

# Endpoints whose body carries a password even without an Authorization header.
_PASSWORD_BODY_ENDPOINTS = frozenset({"users.register", "users.update_user"})


def init_app(app: Flask) -> None:
    app.before_request(_refuse_encoded_separators)
    app.before_request(_require_tls_for_credentials)
    app.after_request(_security_headers)


def _refuse_encoded_separators() -> None:
    environ = this_request().environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    raw_path = raw_uri.split("?", 1)[0]
    if _ENCODED_SEPARATOR_RE.search(raw_path):
        raise BadRequest("the path must not contain percent-encoded '/', '\\' or NUL")


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def carries_credentials() -> bool:
    """Non-empty Basic credentials, or a request whose body sets a password."""
    if request.endpoint in _PASSWORD_BODY_ENDPOINTS:
        return True
    header = request.headers.get("Authorization", "").strip()
    if header[:6].lower() != "basic ":
        return False
    try:
        credentials = request.authorization
    except ValueError:  # bytes that are not base64 at all (Werkzeug raises on non-ASCII)
        credentials = None
    # Malformed Basic is refused too: it may still hold a password.
    return credentials is None or bool(credentials.username or credentials.password)


def _require_tls_for_credentials() -> None:
    config = this_app().config
    if not config["REQUIRE_TLS"]:
        return
    asked = this_request()
    if asked.is_secure:
        return
    if config["TLS_EXEMPT_LOOPBACK"] and _is_loopback(asked.remote_addr):
        return
    if carries_credentials():
        raise Forbidden("this index accepts passwords only over HTTPS; use https:// or a TLS proxy")


def _security_headers(response: Response) -> Response:
    wanted = list(_ALWAYS_HEADERS)
    answered = this_request()
    if "Authorization" in answered.headers:
        # An answer to a caller with credentials is that caller's alone: no shared cache keeps it.
        wanted.append(("Cache-Control", "no-store"))
    if answered.is_secure:
        wanted.append(("Strict-Transport-Security", HSTS))
    # One pass over what the view set, then add: every answer goes through here.
    headers = response.headers
    present = {name.lower() for name in headers.keys()}
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response
