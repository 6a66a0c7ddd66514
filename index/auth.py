"""The request side of authorization: who is calling (Basic), what a token grants (Token), and
the token and endpoint headers of the index's answers."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Response, current_app, request

from . import events, logs, passwords, permissions, principals
from .current import this_app, this_request
from .errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized
from .names import RepoName
from .services import services
from .store import DELETING, generation_of
from .store.records import Principal
from .tokens import Grant, TokenError

TOKEN_CHALLENGE = "Token"
# A bare host[:port] as docker expects in X-Docker-Endpoints. Wider than Werkzeug's own host check,
# which refuses "_" (compose service names such as "docker_index:5000" are real hosts to docker).
PLAIN_HOST_RE = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def scheme() -> str | None:
    """``basic``, ``token``, another lower-cased word, or None without an Authorization header."""
    header = this_request().headers.get("Authorization", "").strip()
    return header.split(None, 1)[0].lower() if header else None


def basic_user() -> Principal | None:
    """The account named by Basic credentials, or None for an anonymous caller.

    Empty credentials (``Basic Og==``, what docker sends when nobody is logged in) are anonymous.
    Wrong credentials are a 401 here, and after too many of them a 429 (see ``ratelimit``);
    whether the account is active is the caller's question.
    """
    if scheme() != "basic":
        return None
    try:
        credentials = this_request().authorization
    except ValueError:  # Werkzeug's base64 decoding of non-ASCII bytes (UnicodeError is one too)
        credentials = None
    if credentials is None or credentials.type != "basic":
        raise Unauthorized("malformed Basic credentials")
    username, password = credentials.username or "", credentials.password or ""
    if not username and not password:
        return None
    user = login(username, password)
    logs.set_user(username)
    return user


def login(username: str, password: str) -> Principal:
    """The account these credentials belong to (Basic or the web's sign-in form).

    401 when they are wrong, 429 past the failed-login limit (see ``ratelimit``); remembered
    credentials pass without bcrypt. Whether the account is active is the caller's question.
    """
    found = services()
    if "+" in username:
        return _robot_login(username, password)
    user = found.store.find_user(username)
    stored_hash = user["password_hash"] if user else None
    if stored_hash and found.credentials.is_verified(username, password, stored_hash):
        logs.set_user(username)
        assert user is not None
        return user  # remembered: a push is never throttled
    # The attempt counts before bcrypt runs (429 when the limit is taken up by failures and
    # attempts still being checked), so parallel guesses cannot all reach bcrypt.
    address = request.remote_addr or ""
    try:
        with found.login_throttle.attempt(address, username) as attempt:
            if not passwords.check_password(password, stored_hash, current_app.config["BCRYPT_ROUNDS"]):
                attempt.failed()
                events.login_failed(username, address)
                logs.failed_login(username)
                raise Unauthorized("wrong username or password")
    except TooManyRequests:
        events.locked_out(username, address)
        raise
    assert user is not None and stored_hash is not None
    found.credentials.remember(username, password, stored_hash)
    logs.set_user(username)
    events.signed_in(username)  # once per credential-cache period, not on every request of a push
    return user


def _robot_login(username: str, password: str) -> Principal:
    """A robot's Basic credentials: its name and current token (no web login, no password)."""
    with services().login_throttle.attempt(request.remote_addr or "", username) as attempt:
        robot = principals.check_robot_token(username, password)
        if robot is None:
            attempt.failed()
            raise Unauthorized("wrong username or password")
    logs.set_user(username)
    return robot


def not_found(name: RepoName) -> NotFound:
    """What a missing repository answers; a hidden one answers exactly the same."""
    return NotFound(f"repository {name.display} not found")


def anonymous_reads_refused() -> Unauthorized:
    return Unauthorized("authentication required: this index needs an account for every read "
                        "(INDEX_ANONYMOUS_PULL=false)")


def reader() -> Principal | None:
    """The caller of a read route: an active account or robot, or None (anonymous, when allowed)."""
    user = basic_user()
    if user is None:
        if not permissions.anonymous_reads_allowed():
            raise anonymous_reads_refused()
        return None
    require_active(user)
    return user


def require_user() -> Principal:
    """The logged-in, active account: 401 without valid credentials, 403 if inactive."""
    user = basic_user()
    if user is None:
        raise Unauthorized("authentication required: log in with docker login")
    require_active(user)
    return user


def require_active(user: Principal) -> None:
    if not user.get("active"):
        raise Forbidden("account is not active")


def may_write(user: Principal, namespace: str) -> bool:
    """May ``user`` create repositories in ``namespace``? (see :mod:`index.permissions`)"""
    return permissions.can_create(user, namespace)


def token_grant(name: RepoName | None = None) -> Grant:
    """Verify ``Authorization: Token ...`` for repository ``name`` (None: the token's own one,
    for routes whose URL names no repository, such as the registry's image routes).

    401 when the token is missing, malformed, tampered with or expired, or its user can no longer
    act; 403 when it is valid but for another repository. The holder's role is worked out again
    on every use: a grant removed or a repository made private since the token was issued counts
    at once (404 as for a missing repository when the holder may no longer read it, 403 when it
    may read but no longer do what the token was issued for).
    """
    try:
        return _verified_grant(name)
    except (Unauthorized, Forbidden) as refused:
        events.token_refused(refused.message)
        raise


def _verified_grant(name: RepoName | None) -> Grant:
    header = request.headers.get("Authorization", "")
    if scheme() != "token":
        raise Unauthorized("a Token is required", challenge=TOKEN_CHALLENGE)
    try:
        grant = services().signer.verify(header)
    except TokenError as exc:
        raise Unauthorized(str(exc), challenge=TOKEN_CHALLENGE) from None
    logs.set_user(grant.user.partition("#")[0] if grant.user else None)  # robots: name#generation
    if name is not None and grant.repository != name.full:
        raise Forbidden(f"token is for repository {grant.repository}, not {name.full}")
    user = None
    if grant.user is not None:
        user = principals.find(grant.user)
        if user is None or not user.get("active"):
            raise Unauthorized("the token's account no longer exists or is not active",
                               challenge=TOKEN_CHALLENGE)
        _check_generation(grant, user)
    namespace, _, repository = grant.repository.partition("/")
    granted = RepoName(namespace, repository)
    role = permissions.role_for(user, granted)
    if role is None:
        raise not_found(granted)
    if role < permissions.TOKEN_NEEDS[grant.access]:
        raise Forbidden(f"the token's holder may no longer {grant.access} {granted.display}")
    return grant


def _check_generation(grant: Grant, user: Principal) -> None:
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


def check_delete_grant(grant: Grant, record: Mapping[str, Any] | None, name: RepoName) -> None:
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


# -- the token headers of an index answer ----------------------------------------------------
def endpoints() -> list[str]:
    """Registry hosts for ``X-Docker-Endpoints``: configured ones, else the public host, else
    the host this request was sent to (as seen through trusted proxies).

    A Host header that is no bare host[:port] is a 400: the client would build ``http:///v1/``
    from an empty value. Views that write call this first, so such a request changes nothing.
    """
    config = this_app().config
    if config["REGISTRY_ENDPOINTS"]:
        return list(config["REGISTRY_ENDPOINTS"])
    if config["PUBLIC_HOST"]:
        return [config["PUBLIC_HOST"]]
    asked = this_request()
    host = asked.host or asked.headers.get("Host", "")
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
              user: Principal | str | None, hosts: Iterable[str] | None = None, *,
              delete_id: str | None = None) -> Response:
    """The token headers of protocol.md 4.1/5/8, plus the endpoints that accept the token
    (``hosts``: what :func:`endpoints` returned earlier in this request).

    ``user`` is the account or robot record the request was authorized as (a name or token
    subject is looked up again), None for an anonymous reader; the token carries its generation.
    A delete token carries the repository's ``delete_id`` (see ``Store.mark_deleting``).
    """
    found = services()
    if isinstance(user, str):
        record = principals.find(user)
        if record is None:
            raise ValueError(f"no account {user!r} to issue a token to")
        user = record
    subject = principals.token_subject(user) if user is not None else None
    generation = generation_of(user) if user is not None else None
    token = found.signer.issue(name.full, access, subject, generation=generation, delete_id=delete_id)
    # add, not set: the response is new and has none of these yet (set scans for old values).
    response.headers.add("X-Docker-Token", token)
    response.headers.add("WWW-Authenticate", f"Token {token}")
    response.headers.add("Cache-Control", "no-store")
    return add_endpoints(response, hosts)
