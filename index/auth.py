"""The request side of authorization: who is calling (Basic) and what a token grants (Token)."""
from __future__ import annotations

from typing import Any

from flask import request

from . import logs, passwords, permissions
from .errors import Forbidden, Unauthorized
from .names import RepoName
from .ratelimit import login_throttle
from .services import services
from .tokens import Grant, TokenError

TOKEN_CHALLENGE = "Token"


def scheme() -> str | None:
    """``basic``, ``token``, another lower-cased word, or None without an Authorization header."""
    header = request.headers.get("Authorization", "").strip()
    return header.split(None, 1)[0].lower() if header else None


def basic_user() -> dict[str, Any] | None:
    """The account named by Basic credentials, or None for an anonymous caller.

    Empty credentials (``Basic Og==``, what docker sends when nobody is logged in) are anonymous.
    Wrong credentials are a 401 here, and after too many of them a 429 (see ``ratelimit``);
    whether the account is active is the caller's question.
    """
    if scheme() != "basic":
        return None
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise Unauthorized("malformed Basic credentials")
    username, password = credentials.username or "", credentials.password or ""
    if not username and not password:
        return None
    found = services()
    user = found.store.find_user(username)
    stored_hash = user["password_hash"] if user else None
    if stored_hash and found.credentials.is_verified(username, password, stored_hash):
        logs.set_user(username)
        return user  # remembered: a push in progress is never throttled
    throttle = login_throttle()
    address = request.remote_addr or ""
    throttle.check(address, username)
    if not passwords.check_password(password, stored_hash, found.config["BCRYPT_ROUNDS"]):
        throttle.record_failure(address, username)
        logs.failed_login(username)
        raise Unauthorized("wrong username or password")
    assert user is not None and stored_hash is not None
    found.credentials.remember(username, password, stored_hash)
    logs.set_user(username)
    return user


def require_user() -> dict[str, Any]:
    """The logged-in, active account: 401 without valid credentials, 403 if inactive."""
    user = basic_user()
    if user is None:
        raise Unauthorized("authentication required: log in with docker login")
    require_active(user)
    return user


def require_active(user: dict[str, Any]) -> None:
    if not user.get("active"):
        raise Forbidden("account is not active")


def may_write(user: dict[str, Any], namespace: str) -> bool:
    """May ``user`` push to repositories of ``namespace``? (see :mod:`index.permissions`)"""
    return permissions.can_create(user, namespace)


def token_grant(name: RepoName | None = None) -> Grant:
    """Verify ``Authorization: Token ...`` for repository ``name`` (None: the token's own one,
    for routes whose URL names no repository, such as the registry's image routes).

    401 when the token is missing, malformed, tampered with or expired, or its user can no longer
    act; 403 when it is valid but for another repository.
    """
    header = request.headers.get("Authorization", "")
    if scheme() != "token":
        raise Unauthorized("a Token is required", challenge=TOKEN_CHALLENGE)
    try:
        grant = services().signer.verify(header)
    except TokenError as exc:
        raise Unauthorized(str(exc), challenge=TOKEN_CHALLENGE) from None
    logs.set_user(grant.user)
    if name is not None and grant.repository != name.full:
        raise Forbidden(f"token is for repository {grant.repository}, not {name.full}")
    if grant.user is not None:
        user = services().store.find_user(grant.user)
        if user is None or not user.get("active"):
            raise Unauthorized("the token's account no longer exists or is not active",
                               challenge=TOKEN_CHALLENGE)
        if grant.access != "read" and not may_write(user, grant.repository.partition("/")[0]):
            raise Forbidden(f"the token's account may no longer change {grant.repository}")
    return grant
