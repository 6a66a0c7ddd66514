"""``/api/v1`` routes of events (Quay's shapes): notifications, audit logs; and ``GET /metrics``.

Notifications exist per repository (its admins), per organization or user namespace (the
namespace's admins, :func:`index.permissions.can_admin_namespace`). Logs: a repository's admins
read its records, site administrators everything.
"""
from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from .. import auth, names, permissions
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from ..names import RepoName
from ..payloads import empty_response, json_response, read_json
from ..services import services
from ..store.records import Principal, UserRecord
from . import TooManyNotifications, add_notification, current, queue_test, remove_notification
from .audit import EVENTS as AUDIT_EVENTS
from .audit import Query, parse_since
from .metrics import metrics
from .notifications import public_view

bp = Blueprint("events_api", __name__)

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
MAX_PAGE = 10_000
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Scope = tuple[str, "str | None"]  # (namespace, repository name or None for the whole namespace)


# -- who may manage which scope ----------------------------------------------------------------
def _person() -> UserRecord:
    """The caller, an active login account: robot accounts manage nothing."""
    user = auth.require_user()
    if permissions.is_robot(user):
        raise Forbidden("robot accounts cannot use this call")
    return user


def _repository_scope(namespace: str, repository: str) -> tuple[Principal, RepoName]:
    name = names.repo_name(namespace, repository)
    user = _person()
    if not permissions.can_admin(user, name):
        if permissions.can_read(user, name):
            raise Forbidden(f"only admins of {name.display} may do this")
        raise NotFound(f"repository {name.display} not found")
    return user, name


def _existing_repository(name: RepoName) -> None:
    if services().store.get_repository(name.namespace, name.repository) is None:
        raise NotFound(f"repository {name.display} not found")


def _namespace_scope(namespace: str) -> Principal:
    if not names.NAMESPACE_RE.fullmatch(namespace):
        raise NotFound(f"organization {namespace[:80]!r} not found")
    user = _person()
    if not permissions.can_admin_namespace(user, namespace):
        raise Forbidden(f"only admins of {namespace} may manage its notifications")
    return user


def _scoped_routes(prefix: str, endpoint: str, resolve_scope: Callable[..., tuple[Principal, Scope]]) -> None:
    """The five notification routes under one URL prefix."""

    def collection(**kwargs: str) -> Response:
        user, scope = resolve_scope(**kwargs)
        if request.method == "POST":
            return _create(user, scope)
        return json_response({"notifications": [public_view(n) for n in current().notifications.in_scope(*scope)]})

    def single(uuid: str, **kwargs: str) -> Response:
        user, scope = resolve_scope(**kwargs)
        notification = _notification_in(scope, uuid)
        if request.method == "DELETE":
            remove_notification(notification, user["username"])
            return empty_response(204)
        return json_response(public_view(notification))

    def test(uuid: str, **kwargs: str) -> Response:
        user, scope = resolve_scope(**kwargs)
        delivery = queue_test(_notification_in(scope, uuid), user["username"])
        return json_response({"delivery": delivery})

    bp.add_url_rule(f"{prefix}/notification/", f"{endpoint}_notifications", collection,
                    methods=["GET", "POST"], strict_slashes=False)
    bp.add_url_rule(f"{prefix}/notification/<uuid>", f"{endpoint}_notification", single,
                    methods=["GET", "DELETE"], strict_slashes=False)
    bp.add_url_rule(f"{prefix}/notification/<uuid>/test", f"{endpoint}_notification_test", test,
                    methods=["POST"], strict_slashes=False)


def _repository_resolver(namespace: str, repository: str) -> tuple[Principal, Scope]:
    # No existence check here: the webhooks of a deleted repository stay listable and removable
    # (they would fire again for a new repository of that name); only adding one needs it.
    user, name = _repository_scope(namespace, repository)
    return user, (name.namespace, name.repository)


def _organization_resolver(org: str) -> tuple[Principal, Scope]:
    return _namespace_scope(org), (org, None)


def _user_resolver() -> tuple[Principal, Scope]:
    user = _person()
    return _namespace_scope(user["username"]), (user["username"], None)


def _notification_in(scope: Scope, uuid: str) -> dict[str, Any]:
    notification = current().notifications.get(uuid) if len(uuid) <= 64 else None
    if notification is None or (notification["namespace"], notification["repository"]) != scope:
        raise NotFound(f"notification {uuid[:64]} not found")
    return notification


def _create(user: Principal, scope: Scope) -> Response:
    namespace, repository = scope
    if repository is not None:
        _existing_repository(RepoName(namespace, repository))
    try:
        created, generated = add_notification(read_json(), namespace, repository, user["username"])
    except TooManyNotifications as exc:
        raise Conflict(str(exc)) from None
    except ValueError as exc:  # NotificationError, TargetRefused
        raise BadRequest(str(exc)) from None
    view = public_view(created)
    if generated is not None:
        view["config"]["secret"] = generated  # shown this once; keep it to check signatures
    return json_response(view, 201)


_scoped_routes("/api/v1/repository/<namespace>/<repository>", "repository", _repository_resolver)
_scoped_routes("/api/v1/organization/<org>", "organization", _organization_resolver)
_scoped_routes("/api/v1/user", "user", _user_resolver)


# -- audit logs ---------------------------------------------------------------------------------
def _int_arg(name: str, default: int, highest: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= highest:
        raise BadRequest(f"{name} must be a whole number from 1 to {highest}")
    return int(raw)


def _logs(query_repository: str | None, current_only: bool = False) -> Response:
    known = {"page", "per_page", "user", "event", "since"} | ({"repository"} if query_repository is None else set())
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)[:200]}; expected {', '.join(sorted(known))}")
    page = _int_arg("page", 1, MAX_PAGE)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    event = request.args.get("event")
    if event is not None and event not in AUDIT_EVENTS:
        raise BadRequest(f"event must be one of {', '.join(AUDIT_EVENTS)}")
    since = None
    if request.args.get("since"):
        try:
            since = parse_since(request.args["since"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    repository = query_repository if query_repository is not None else request.args.get("repository")
    query = Query(user=request.args.get("user"), repository=repository, event=event, since=since,
                  current_repository_only=current_only)
    entries, more = current().audit.query(query, offset=(page - 1) * per_page, limit=per_page)
    body: dict[str, Any] = {"logs": entries, "page": page, "per_page": per_page, "has_more": more}
    if more:
        body["next_page"] = page + 1
    return json_response(body)


@bp.get("/api/v1/superuser/logs")
def superuser_logs() -> Response:
    user = _person()
    if not user.get("admin"):
        raise Forbidden("only site administrators may read the whole audit trail")
    return _logs(None)


@bp.get("/api/v1/repository/<namespace>/<repository>/logs")
def repository_logs(namespace: str, repository: str) -> Response:
    _, name = _repository_scope(namespace, repository)
    return _logs(name.full, current_only=True)  # the superuser log keeps earlier ones


# -- metrics ------------------------------------------------------------------------------------
def _may_scrape() -> bool:
    token = current().config["METRICS_TOKEN"]
    header = request.headers.get("Authorization", "")
    if token and header[:7].lower() == "bearer ":
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def scrape() -> Response:
    """The Prometheus text format: loopback clients, or ``Authorization: Bearer INDEX_METRICS_TOKEN``."""
    if not _may_scrape():
        if current().config["METRICS_TOKEN"]:
            raise Unauthorized("metrics need Authorization: Bearer <INDEX_METRICS_TOKEN>",
                               challenge='Bearer realm="metrics"')
        raise Forbidden("metrics are served to loopback clients only (set INDEX_METRICS_TOKEN to allow others)")
    response = Response(metrics().exposition(current().state), mimetype=None)
    response.headers["Content-Type"] = PROMETHEUS_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response

