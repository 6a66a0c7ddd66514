"""The OpenAPI description of ``/api/v1`` (access control), merged into :func:`index.openapi.document`."""
from __future__ import annotations

import copy
from typing import Any

from .. import principals
from ..names import MAX_EMAIL_CHARS
from .operations import MAX_DESCRIPTION_CHARS

Json = dict[str, Any]

ERROR = {"$ref": "#/components/schemas/Error"}
BASIC: list[Json] = [{"basic": []}]
OPTIONAL_BASIC: list[Json] = [{}, {"basic": []}]
NAMESPACE_PATTERN = r"^[a-z0-9_]+(-[a-z0-9_]+)*$"
REPOSITORY_PATTERN = r"^\.?([a-z0-9_-]+\.)*[a-z0-9_-]+\.?$"
SHORT_PATTERN = "^" + principals.ROBOT_SHORT_RE.pattern + "$"
PRINCIPAL_PATTERN = r"^([a-z0-9_]{4,30}|[a-z0-9_]+(-[a-z0-9_]+)*\+[a-z][a-z0-9_]{1,29})$"


def _param(name: str, pattern: str, description: str, max_length: int, min_length: int = 1) -> Json:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": pattern, "minLength": min_length, "maxLength": max_length}}


NAMESPACE = _param("namespace", NAMESPACE_PATTERN, "user or organization", 30, 2)
REPOSITORY = _param("repository", REPOSITORY_PATTERN, "repository name", 128)
ORG = _param("org", NAMESPACE_PATTERN, "organization name", 30, 2)
TEAM = _param("team", SHORT_PATTERN, "team name", 30, 2)
SHORT = _param("short", SHORT_PATTERN, "the robot's name after the +", 30, 2)
USERNAME = _param("username", PRINCIPAL_PATTERN, "a user, or a robot <namespace>+<name>", 61, 4)
MEMBER = _param("member", PRINCIPAL_PATTERN, "a user, or a robot <org>+<name>", 61, 4)


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> Json:
    meanings = {
        "400": "bad body or name (the message says which)",
        "401": "no or wrong credentials",
        "403": "authenticated but not an admin of that thing (or an inactive account, or a robot "
               "where only people may act)",
        "404": "unknown, or not visible to the caller",
        "409": "name taken (user and organization names share one space), or the organization "
               "still has repositories",
        "413": "body larger than INDEX_MAX_JSON_BYTES",
        "415": "body is not JSON",
        "429": "too many failed logins",
    }
    found: Json = {status: _json(ERROR, meanings[status]) for status in statuses}
    if "401" in found:
        found["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    return found


def _op(summary: str, responses: Json, parameters: list[Json], *, body: Json | None = None,
        security: list[Json] | None = None, body_errors: bool = False) -> Json:
    errors = ("400", "401", "403", "404", "429") + (("413", "415") if body_errors or body else ())
    operation: Json = {"tags": ["index"], "summary": summary, "security": security or BASIC,
                       "responses": {**responses, **_errors(*errors)}}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _object(properties: Json, required: list[str]) -> Json:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


ROLE = {"type": "string", "enum": ["read", "write", "admin"]}
TEAM_ROLE = {"type": "string", "enum": ["member", "creator", "admin"]}
VISIBILITY = {"type": "string", "enum": ["public", "private"]}
DESCRIPTION = {"type": "string", "nullable": True, "maxLength": MAX_DESCRIPTION_CHARS,
               "pattern": "^[^\\u0000]*$", "description": "null: empty"}
NAME_ROLE = _object({"name": {"type": "string"}, "role": {"type": "string"}}, ["name", "role"])
ROBOT = _object({"name": {"type": "string"}, "token": {"type": "string"}}, ["name", "token"])
REPOSITORY_VIEW = _object({"namespace": {"type": "string"}, "name": {"type": "string"},
                           "description": {"type": "string"}, "is_public": {"type": "boolean"},
                           "can_write": {"type": "boolean"}, "can_admin": {"type": "boolean"}},
                          ["namespace", "name", "description", "is_public", "can_write", "can_admin"])
GRANTS = _object({"permissions": {"type": "object", "additionalProperties": {
    "type": "object", "required": ["role"], "properties": {"role": ROLE, "name": {"type": "string"},
                                                           "is_robot": {"type": "boolean"}}}}},
    ["permissions"])
MEMBERS = _object({"members": {"type": "array", "items": _object(
    {"name": {"type": "string"}, "kind": {"type": "string", "enum": ["user", "robot"]}}, ["name", "kind"])}},
    ["members"])
ROBOT_LIST = _object({"robots": {"type": "array", "items": {
    "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}, ["robots"])
DELETED = {"description": "done (no body)"}


def _robot_paths(prefix: str, params: list[Json], who: str) -> Json:
    robot = [*params, SHORT]
    return {
        f"{prefix}/robots": {"get": _op(f"the robots of {who}", {"200": _json(ROBOT_LIST, "names")}, params)},
        f"{prefix}/robots/{{short}}": {
            "put": _op(f"create a robot of {who} (its token is the password for docker login)",
                       {"201": _json(ROBOT, "created"), "200": _json(ROBOT, "it existed: same name, token unchanged")},
                       robot),
            "get": _op("a robot's name and current token", {"200": _json(ROBOT, "the robot")}, robot),
            "delete": _op("delete a robot, its team memberships and grants", {"204": DELETED}, robot),
        },
        f"{prefix}/robots/{{short}}/regenerate": {
            "post": _op("a new token; the old one stops working at once", {"200": _json(ROBOT, "new token")}, robot)},
    }


def paths() -> Json:
    repo = [NAMESPACE, REPOSITORY]
    found: Json = {
        "/api/v1/repository": {"post": _op(
            "create an (empty) repository", {"201": _json(REPOSITORY_VIEW, "created"), **_errors("409")}, [],
            body=_object({"namespace": {"type": "string", "pattern": NAMESPACE_PATTERN,
                                        "minLength": 2, "maxLength": 30},
                          "repository": {"type": "string", "pattern": REPOSITORY_PATTERN, "maxLength": 128},
                          "visibility": VISIBILITY, "description": DESCRIPTION},
                         ["namespace", "repository"]))},
        "/api/v1/repository/{namespace}/{repository}": {"get": _op(
            "a repository as the caller sees it", {"200": _json(REPOSITORY_VIEW, "the repository")}, repo,
            security=OPTIONAL_BASIC)},
        "/api/v1/repository/{namespace}/{repository}/changevisibility": {"post": _op(
            "make a repository public or private (repository admins)",
            {"200": _json({"type": "object", "required": ["success"],
                           "properties": {"success": {"type": "boolean"}, "visibility": VISIBILITY}}, "changed")},
            repo, body=_object({"visibility": VISIBILITY}, ["visibility"]))},
    }
    for kind, param, label in (("user", USERNAME, "users and robots"), ("team", TEAM, "teams of the organization")):
        one = [*repo, param]
        found[f"/api/v1/repository/{{namespace}}/{{repository}}/permissions/{kind}/"] = {"get": _op(
            f"grants to {label} (repository admins)", {"200": _json(GRANTS, "name -> role")}, repo)}
        found[f"/api/v1/repository/{{namespace}}/{{repository}}/permissions/{kind}/{{{param['name']}}}"] = {
            "put": _op(f"grant a role to one of the {label}", {"200": _json(NAME_ROLE, "granted")}, one,
                       body=_object({"role": ROLE}, ["role"])),
            "delete": _op("take a grant away", {"204": DELETED}, one),
        }
    team = [ORG, TEAM]
    found.update({
        "/api/v1/organization/": {"post": _op(
            "create an organization; the caller lands in its team owners",
            {"201": _json(_object({"name": {"type": "string"}, "email": {"type": "string"}}, ["name", "email"]),
                          "created"), **_errors("409")}, [],
            body=_object({"name": {"type": "string", "pattern": NAMESPACE_PATTERN, "minLength": 2, "maxLength": 30},
                          "email": {"type": "string", "format": "email", "maxLength": MAX_EMAIL_CHARS}},
                         ["name", "email"]))},
        "/api/v1/organization/{org}": {
            "get": _op("an organization and its teams (members)",
                       {"200": _json({"type": "object"}, "the organization")}, [ORG]),
            "delete": _op("delete an organization (it must hold no repositories) and its robots",
                          {"204": DELETED, **_errors("409")}, [ORG]),
        },
        "/api/v1/organization/{org}/team/{team}": {
            "put": _op("create a team or change its role", {"200": _json(NAME_ROLE, "the team")}, team,
                       body=_object({"role": TEAM_ROLE, "description": DESCRIPTION}, ["role"])),
            "delete": _op("delete a team and its grants (not owners)", {"204": DELETED}, team),
        },
        "/api/v1/organization/{org}/team/{team}/members": {"get": _op(
            "a team's members (organization members)", {"200": _json(MEMBERS, "members")}, team)},
        "/api/v1/organization/{org}/team/{team}/members/{member}": {
            "put": _op("add a user or robot to a team", {"200": _json(
                _object({"name": {"type": "string"}, "kind": {"type": "string"}}, ["name", "kind"]), "added")},
                [*team, MEMBER]),
            "delete": _op("remove a member (an organization keeps one owner)", {"204": DELETED}, [*team, MEMBER]),
        },
    })
    found.update(_robot_paths("/api/v1/organization/{org}", [ORG], "an organization (its admins)"))
    found.update(_robot_paths("/api/v1/user", [], "the caller's own namespace"))
    return copy.deepcopy(found)
