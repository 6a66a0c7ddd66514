"""The request side of authorization: who is calling (Basic) and what a token grants (Token)."""
from __future__ import annotations

from typing import Any

from flask import request

from . import logs, passwords, permissions
from .errors import Forbidden, NotFound, Unauthorized
from .names import RepoName
from .ratelimit import login_throttle
from .services import services
from .store import DELETING, generation_of
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
    try:
        credentials = request.authorization
    except ValueError:  # Werkzeug's base64 decoding of non-ASCII bytes (UnicodeError is one too)
        credentials = None
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
    # The attempt counts before bcrypt runs (429 when the limit is taken up by failures and
    # attempts still being checked), so parallel guesses cannot all reach bcrypt.
    with login_throttle().attempt(request.remote_addr or "", username) as attempt:
        if not passwords.check_password(password, stored_hash, found.config["BCRYPT_ROUNDS"]):
            attempt.failed()
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
        _check_generation(grant, user)
        if grant.access != "read" and not may_write(user, grant.repository.partition("/")[0]):
            raise Forbidden(f"the token's account may no longer change {grant.repository}")
    return grant


def _check_generation(grant: Grant, user: dict[str, Any]) -> None:
    """A token lives only as long as the account generation it was issued to.

    Tokens from before generations existed carry none: they may still read until they expire
    (a pull in progress across the upgrade goes on), but never write or delete.
    """
    if grant.generation is None:
        if grant.access != "read":
            raise Unauthorized("this token was issued by an older version of the index; "
                               "log in and push again for a new one", challenge=TOKEN_CHALLENGE)
        return
    if grant.generation != generation_of(user):
        raise Unauthorized("this token was issued before the account's password changed, or to an "
                           "account since deleted or deactivated; log in again", challenge=TOKEN_CHALLENGE)


def check_delete_grant(grant: Grant, record: dict[str, Any] | None, name: RepoName) -> None:
    """A delete token is good only for the delete it was issued for: while the repository is in
    the deleting state with the delete id signed into the token. The id goes when the delete
    completes (the record is removed) or a new push re-opens the repository, so a replay fails."""
    if grant.access != "delete":
        return
    if record is None:
        raise NotFound(f"repository {name.display} not found")
    if record["state"] != DELETING or not grant.delete_id or record.get("delete_id") != grant.delete_id:
        raise Unauthorized("this delete token was spent or is for another delete of "
                           f"{name.display}; start the delete again", challenge=TOKEN_CHALLENGE)
