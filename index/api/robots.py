"""Robot accounts of an organization (``/api/v1/organization/<org>/robots``) and of the
caller's own namespace (``/api/v1/user/robots``): ``<namespace>+<short>``, token as password."""
from __future__ import annotations

from flask import Response, request

from ..payloads import empty_response, json_response
from . import operations
from .common import body, bp, person
from .organization import _admin_of


def _optional_description() -> str | None:
    """The body is optional here: ``{"description": ...}`` or nothing."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return None
    return body(optional=("description",)).get("description")


def _create(namespace: str, short: str) -> Response:
    view, created = operations.create_robot(namespace, short, _optional_description())
    return json_response(view, 201 if created else 200)


def _list(namespace: str) -> Response:
    robots = sorted(operations.access_store().list_robots(namespace), key=lambda r: r["name"])
    return json_response({"robots": [{"name": r["name"], "description": r.get("description", "")}
                                     for r in robots]})


def _user_namespace() -> str:
    """The caller's own namespace (a person's: robots cannot have robots)."""
    return person()["username"]


@bp.get("/organization/<org>/robots")
def list_org_robots(org: str) -> Response:
    _admin_of(org)
    return _list(org)


@bp.put("/organization/<org>/robots/<short>")
def put_org_robot(org: str, short: str) -> Response:
    _admin_of(org)
    return _create(org, short)


@bp.get("/organization/<org>/robots/<short>")
def get_org_robot(org: str, short: str) -> Response:
    _admin_of(org)
    return json_response(operations.robot_view(operations.robot_or_404(org, short)))


@bp.post("/organization/<org>/robots/<short>/regenerate")
def regenerate_org_robot(org: str, short: str) -> Response:
    _admin_of(org)
    return json_response(operations.regenerate_robot(org, short))


@bp.delete("/organization/<org>/robots/<short>")
def delete_org_robot(org: str, short: str) -> Response:
    _admin_of(org)
    operations.delete_robot(org, short)
    return empty_response(204)


@bp.get("/user/robots")
def list_user_robots() -> Response:
    return _list(_user_namespace())


@bp.put("/user/robots/<short>")
def put_user_robot(short: str) -> Response:
    return _create(_user_namespace(), short)


@bp.get("/user/robots/<short>")
def get_user_robot(short: str) -> Response:
    return json_response(operations.robot_view(operations.robot_or_404(_user_namespace(), short)))


@bp.post("/user/robots/<short>/regenerate")
def regenerate_user_robot(short: str) -> Response:
    return json_response(operations.regenerate_robot(_user_namespace(), short))


@bp.delete("/user/robots/<short>")
def delete_user_robot(short: str) -> Response:
    operations.delete_robot(_user_namespace(), short)
    return empty_response(204)
