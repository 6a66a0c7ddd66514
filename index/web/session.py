"""Browser sessions: who is signed in, CSRF tokens, idle expiry.

The session is Flask's signed cookie (itsdangerous, the index's secret key): ``HttpOnly``,
``SameSite=Lax``, ``Secure`` whenever the request came over TLS. It holds the username, a
fingerprint of the account's password hash (so a password change, in any worker, ends every
other session at its next request), the time of the last request (idle expiry) and the CSRF
token that every form that changes something must send back.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, Response, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer

from ..errors import Forbidden
from ..services import services
from ..store.records import UserRecord

COOKIE_NAME = "index_session"
CSRF_FIELD = "csrf_token"
# The idle clock is moved on at most this often, so a page view does not always reset the cookie.
_SEEN_GRANULARITY = 60


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, signed with the index's key, ``Secure`` decided per request.

    The key is kept here rather than in ``app.secret_key``: that is ``app.config["SECRET_KEY"]``,
    which is ``INDEX_SECRET_KEY`` (set or not) to the rest of the index.
    """

    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key
        # Made once: Flask's interface builds one per request, a tenth of an API ping's time.
        self._serializer = URLSafeTimedSerializer(secret_key, salt=self.salt, serializer=self.serializer,
                                                  signer_kwargs={"key_derivation": self.key_derivation,
                                                                 "digest_method": self.digest_method})

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request and request.is_secure)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer:
        return self._serializer

    # Docker clients and registries never send cookies: their requests skip the cookie parsing and
    # the seven settings look-ups of Flask's save (nothing to set, delete or vary on).
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)


def init_app(app: Flask, secret_key: str) -> None:
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = _SessionInterface(secret_key)


def _fingerprint(user: Mapping[str, Any]) -> str:
    """Changes whenever the password (or the account's generation) changes."""
    material = f"{user['password_hash']}|{user.get('generation', 0)}".encode()
    key = current_app.session_interface.secret_key  # type: ignore[attr-defined]
    return hmac.new(str(key).encode(), material, hashlib.sha256).hexdigest()[:32]


def current_user() -> UserRecord | None:
    """The signed-in, active account, or None; an expired or outdated session is ended here."""
    username = session.get("user")
    if not username:
        return None
    now = int(time.time())
    idle = current_app.config["WEB_SESSION_IDLE_SECONDS"]
    user = services().store.find_user(username)
    if (user is None or not user.get("active") or now - int(session.get("seen", 0)) > idle
            or not hmac.compare_digest(session.get("fp", ""), _fingerprint(user))):
        end()
        return None
    if now - int(session.get("seen", 0)) >= _SEEN_GRANULARITY:
        session["seen"] = now
    return user


def begin(user: Mapping[str, Any]) -> None:
    """Sign ``user`` in: a new session (new CSRF token), nothing carried over."""
    session.clear()
    session["user"] = user["username"]
    session["fp"] = _fingerprint(user)
    session["seen"] = int(time.time())
    session["csrf"] = secrets.token_urlsafe(32)


def refresh(user: Mapping[str, Any]) -> None:
    """Keep this session after the account's password changed (the others end)."""
    session["fp"] = _fingerprint(user)


def end() -> None:
    session.clear()


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf() -> None:
    """Every state-changing form sends the session's token back; anything else is refused."""
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden("the form has expired or did not come from this site: reload the page and try again")
