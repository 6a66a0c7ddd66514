"""The request side of authorization: who is calling (Basic), what a token grants (Token), and
the token and endpoint headers of the index's answers."""
from __future__ import annotations

import re
from typing import Any, Iterable

from flask import Response, current_app, request

from . import logs, passwords, permissions, principals
from .errors import BadRequest, Forbidden, NotFound, Unauthorized
from .names import RepoName
from .services import services
from .tokens import Grant, TokenError

TOKEN_CHALLENGE = "Token"
# A bare host[:port] as docker expects in X-Docker-Endpoints. Wider than Werkzeug's own host check,
# which refuses "_" (compose service names such as "docker_index:5000" are real hosts to docker).
PLAIN_HOST_RE = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


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
    if "+" in username:
        return _robot_login(username, password)
    user = found.store.find_user(username)
    stored_hash = user["password_hash"] if user else None
    if stored_hash and found.credentials.is_verified(username, password, stored_hash):
        logs.set_user(username)
        return user  # remembered: a push in progress is never throttled
    throttle = found.login_throttle
    address = request.remote_addr or ""
    throttle.check(address, username)
    if not passwords.check_password(password, stored_hash, current_app.config["BCRYPT_ROUNDS"]):
        throttle.record_failure(address, username)
        logs.failed_login(username)
        raise Unauthorized("wrong username or password")
    assert user is not None and stored_hash is not None
    found.credentials.remember(username, password, stored_hash)
    logs.set_user(username)
    return user


def _robot_login(username: str, password: str) -> dict[str, Any]:
    """A robot's Basic credentials: its name and current token (no web login, no password)."""
    throttle = services().login_throttle
    address = request.remote_addr or ""
    throttle.check(address, username)
    robot = principals.check_robot_token(username, password)
    if robot is None:
        throttle.record_failure(address, username)
        raise Unauthorized("wrong username or password")
    logs.set_user(username)
    return robot


def not_found(name: RepoName) -> NotFound:
    """What a missing repository answers; a hidden one answers exactly the same."""
    return NotFound(f"repository {name.display} not found")


def anonymous_reads_refused() -> Unauthorized:
    return Unauthorized("authentication required: this index needs an account for every read "
                        "(INDEX_ANONYMOUS_PULL=false)")


def reader() -> dict[str, Any] | None:
    """The caller of a read route: an active account or robot, or None (anonymous, when allowed)."""
    user = basic_user()
    if user is None:
        if not permissions.anonymous_reads_allowed():
            raise anonymous_reads_refused()
        return None
    require_active(user)
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
    namespace, _, repository = grant.repository.partition("/")
    granted = RepoName(namespace, repository)
    role = permissions.role_for(user, granted)
    if role is None:
        raise not_found(granted)
    if role < permissions.TOKEN_NEEDS[grant.access]:
        raise Forbidden(f"the token's holder may no longer {grant.access} {granted.display}")
    return grant


# -- the token headers of an index answer ----------------------------------------------------
def endpoints() -> list[str]:
    """Registry hosts for ``X-Docker-Endpoints``: configured ones, else the public host, else
    the host this request was sent to (as seen through trusted proxies).

    A Host header that is no bare host[:port] is a 400: the client would build ``http:///v1/``
    from an empty value. Views that write call this first, so such a request changes nothing.
    """
    config = current_app.config
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


def add_token(response: Response, name: RepoName, access: str, user: str | None,
              hosts: Iterable[str] | None = None) -> Response:
    """The token headers of protocol.md 4.1/5/8, plus the endpoints that accept the token
    (``hosts``: what :func:`endpoints` returned earlier in this request)."""
    token = services().signer.issue(name.full, access, user)
    # add, not set: the response is new and has none of these yet (set scans for old values).
    response.headers.add("X-Docker-Token", token)
    response.headers.add("WWW-Authenticate", f"Token {token}")
    response.headers.add("Cache-Control", "no-store")
    return add_endpoints(response, hosts)
