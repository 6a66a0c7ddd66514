"""What every ``/api/v1`` view needs: the blueprint, the caller, the JSON body."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from .. import auth, names, permissions
from ..errors import BadRequest, Forbidden
from ..names import RepoName
from ..payloads import read_json
from ..store.records import Principal, UserRecord

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def caller() -> Principal:
    """The authenticated, active account or robot: 401 without credentials, 403 if inactive."""
    return auth.require_user()


def person() -> UserRecord:
    """The caller, who must be a login account (robots do not manage anything)."""
    user = caller()
    if permissions.is_robot(user):
        raise Forbidden("robot accounts cannot use this call")
    return user


def body(*required: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object body: 400 if it is not one, lacks a required field or has unknown ones."""
    data = read_json()
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    missing = [field for field in required if field not in data]
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")
    unknown = set(data) - set(required) - set(optional)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    return data


def repo(namespace: str, repository: str) -> RepoName:
    return names.repo_name(namespace, repository)
