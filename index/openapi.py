"""The API's contract as an OpenAPI 3.0 document, served at ``GET /v1/openapi.json``.

Built from small helpers so that each repository route is written once and documented in both of
its URL forms (``/v1/repositories/{namespace}/{repository}/...`` and the library form
``/v1/repositories/{repository}/...``). Operations tagged ``registry`` are the built-in v1
registry (docs/protocol.md section 10). A test compares this document with the app's URL rules.
"""
from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response

from . import names
from .api.openapi_paths import paths as api_paths
from .events import openapi as events_openapi
from .payloads import json_response
from .probes import API_VERSION

bp = Blueprint("openapi", __name__)

Json = dict[str, Any]

# Patterns a schema generator can use; each says the same as the check in names.py.
NAMESPACE_PATTERN = r"^[a-z0-9_]+(-[a-z0-9_]+)*$"
# Single dots only between other characters: no "..", not only dots (names.repo_name).
REPOSITORY_PATTERN = r"^\.?([a-z0-9_-]+\.)*[a-z0-9_-]+\.?$"
USERNAME_PATTERN = "^" + names.USERNAME_RE.pattern + "$"
IMAGE_ID_PATTERN = "^" + names.IMAGE_ID_RE.pattern + "$"
TAG_PATTERN = "^" + names.TAG_RE.pattern + "$"
CHECKSUM_PATTERN = "^" + names.CHECKSUM_RE.pattern + "$"

ERROR = {"$ref": "#/components/schemas/Error"}
TOKEN_HEADERS = {
    "X-Docker-Token": {"description": "the token, without the `Token ` prefix",
                       "schema": {"type": "string"}, "required": True},
    "WWW-Authenticate": {"description": "`Token <the same token>`", "schema": {"type": "string"}},
    "X-Docker-Endpoints": {"description": "registry hosts that accept the token (bare host:port)",
                           "schema": {"type": "string"}, "required": True},
    "Cache-Control": {"description": "always `no-store`: the answer holds a credential",
                      "schema": {"type": "string", "enum": ["no-store"]}, "required": True},
}


def _json(schema: Json, description: str, headers: Json | None = None) -> Json:
    response: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: Json | None = None) -> Json:
    return _json(ERROR, description, headers)


def _empty(description: str) -> Json:
    return {"description": description}


def _path_param(name: str, pattern: str, description: str, max_length: int | None = None) -> Json:
    schema: Json = {"type": "string", "pattern": pattern}
    if max_length:
        schema["maxLength"] = max_length
    if name == "namespace":
        schema["minLength"] = 2
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


NAMESPACE = _path_param("namespace", NAMESPACE_PATTERN,
                        "2-30 of a-z, 0-9, _ and - (no leading, trailing or double -)", 30)
REPOSITORY = _path_param("repository", REPOSITORY_PATTERN, "1-128 of a-z, 0-9, _, . and - (not only dots)", 128)
IMAGE_ID = _path_param("image_id", IMAGE_ID_PATTERN, "64 lower-case hex digits")
TAG = _path_param("tag", TAG_PATTERN, "1-128 of A-Z, a-z, 0-9, _, . and -")
USERNAME = _path_param("username", USERNAME_PATTERN, "4-30 of a-z, 0-9 and _")

BASIC_AUTH: list[Json] = [{"basic": []}]
OPTIONAL_BASIC: list[Json] = [{}, {"basic": []}]
TOKEN_AUTH: list[Json] = [{"token": []}]
# Reads of repositories and images: a Token, Basic credentials, or none at all (anonymous pull of
# public repositories, unless INDEX_ANONYMOUS_PULL=false); what is hidden answers 404.
READ_AUTH: list[Json] = [{}, {"basic": []}, {"token": []}]

COMMON_ERRORS = {
    "400": _error("invalid input: the message names the field"),
    "413": _error("body larger than INDEX_MAX_JSON_BYTES"),
    "415": _error("body is not JSON"),
}
LOGIN_ERRORS = {
    "401": _error("no or wrong credentials",
                  {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}),
    "403": _error("account inactive, not allowed, or credentials over plain HTTP with INDEX_REQUIRE_TLS"),
    "429": _error("too many failed logins from this address or for this username",
                  {"Retry-After": {"description": "seconds to wait", "required": True,
                                   "schema": {"type": "integer", "minimum": 1}}}),
}
TOKEN_ERRORS = {
    "401": _error("token missing, malformed, tampered with, expired or of an inactive account",
                  {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Token"]}, "required": True}}),
    "403": _error("token valid but for another repository or access"),
}


def _operation(summary: str, responses: Json, *, tag: str = "index", security: list[Json] | None = None,
               body: Json | None = None, parameters: list[Json] | None = None,
               description: str | None = None, body_required: bool = True) -> Json:
    operation: Json = {"tags": [tag], "summary": summary, "responses": responses}
    if description:
        operation["description"] = description
    operation["security"] = security if security is not None else []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": body}
    return operation


def _json_body(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def _repository_paths(suffix: str, operations: Json, extra: list[Json] | None = None) -> Json:
    """The same operations under the user and the library form of a repository URL."""
    extra = extra or []
    user_form = {method: {**copy.deepcopy(op), "parameters": [NAMESPACE, REPOSITORY, *extra]}
                 for method, op in operations.items()}
    library_form = {}
    for method, op in operations.items():
        library_op = copy.deepcopy(op)
        library_op["summary"] = op["summary"] + " (library/<repository>)"
        library_op["parameters"] = [REPOSITORY, *extra]
        library_form[method] = library_op
    return {f"/v1/repositories/{{namespace}}/{{repository}}{suffix}": user_form,
            f"/v1/repositories/{{repository}}{suffix}": library_form}


def _index_paths() -> Json:
    ping = {"get": _operation("is this a v1 index/registry?", {
        "200": _json({"type": "boolean"}, "always true", {
            "X-Docker-Registry-Version": {"schema": {"type": "string"}, "required": True},
            "X-Docker-Registry-Standalone": {"schema": {"type": "string", "enum": ["false"]}, "required": True},
        })})}
    register = _operation(
        "register an account (docker login's first request)",
        {"201": _json({"type": "string", "enum": ["User Created"]}, "created"),
         "400": _json({"oneOf": [ERROR, {"type": "string", "enum": ["Username or email already exists"]}]},
                      "invalid input, or the username or e-mail is taken (exact body docker compares)"),
         "401": _error("registration is closed",
                       {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}),
         "403": _error("password over plain HTTP while INDEX_REQUIRE_TLS is on"),
         "413": COMMON_ERRORS["413"], "415": COMMON_ERRORS["415"],
         "429": _error("too many registrations from this address (INDEX_REGISTRATIONS_PER_HOUR)",
                       {"Retry-After": {"description": "seconds to wait", "required": True,
                                        "schema": {"type": "integer", "minimum": 1}}})},
        body=_json_body({"$ref": "#/components/schemas/NewUser"}))
    login = _operation("check Basic credentials (docker login)",
                       {"200": _json({"type": "string", "enum": ["OK"]}, "valid and active"), **LOGIN_ERRORS},
                       security=OPTIONAL_BASIC)
    paths: Json = {
        "/_ping": ping,
        "/v1/_ping": copy.deepcopy(ping),
        "/v2/": {"get": _operation("not a v2 registry (docker 1.5 falls back to v1)",
                                   {"404": _error("always")})},
        "/v1/users": {"post": register, "get": login},
        "/v1/users/": {"post": copy.deepcopy(register), "get": copy.deepcopy(login)},
        "/v1/users/{username}/": {"put": _operation(
            "change your e-mail (added) and/or password",
            {"204": _empty("changed"), "400": COMMON_ERRORS["400"], **LOGIN_ERRORS,
             "404": _error("no such user (admins only)"), "413": COMMON_ERRORS["413"],
             "415": COMMON_ERRORS["415"]},
            security=BASIC_AUTH, parameters=[USERNAME],
            body=_json_body({"$ref": "#/components/schemas/UserChange"}))},
        "/v1/search": {"get": _operation(
            "repositories whose name or description contains q",
            {"200": _json({"$ref": "#/components/schemas/SearchResults"}, "one page of results"),
             "400": COMMON_ERRORS["400"]},
            parameters=[
                {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 256}},
                {"name": "n", "in": "query", "allowEmptyValue": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100}, "description": "page size, 25 if empty"},
                {"name": "page", "in": "query", "allowEmptyValue": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                 "description": "1 if empty; at most 9 digits"},
            ])},
        "/v1/openapi.json": {"get": _operation("this document", {
            "200": _json({"type": "object"}, "OpenAPI 3.0 document")})},
    }
    image_list = {"$ref": "#/components/schemas/ImageList"}
    paths.update(_repository_paths("/", {
        "put": _operation(
            "create or re-announce a repository before a push; hands out a write token",
            {"200": _json({"type": "string", "enum": [""]}, "announced", TOKEN_HEADERS),
             **COMMON_ERRORS, **LOGIN_ERRORS},
            security=BASIC_AUTH, body=_json_body(image_list)),
        "delete": _operation(
            "delete a repository (two steps), or the registry's delete with a Token",
            {"200": _json({}, "removed (second step, request header X-Docker-Endpoints)"),
             "202": _json({"type": "string", "enum": [""]}, "hidden; delete token handed out", TOKEN_HEADERS),
             "400": COMMON_ERRORS["400"], **LOGIN_ERRORS,
             "404": _error("no such repository")},
            security=[{"basic": []}, {"token": []}],
            description="With `Authorization: Token ...access=delete` this is the built-in "
                        "registry's DELETE (docs/protocol.md 8, 12.15)."),
    }))
    paths.update(_repository_paths("/images", {
        "put": _operation(
            "merge image ids and checksums into the list (end of a push)",
            {"204": _empty("merged"), **COMMON_ERRORS, **LOGIN_ERRORS,
             "404": _error("no such repository")},
            security=BASIC_AUTH, body=_json_body(image_list)),
        "get": _operation(
            "the image list: for a pulling client (read token on request) or a registry checking a token",
            {"200": _json(image_list, "the list", {
                "X-Docker-Endpoints": {"schema": {"type": "string"}}}),
             "400": COMMON_ERRORS["400"], **LOGIN_ERRORS, **TOKEN_ERRORS,
             "401": _error("wrong Basic credentials or a refused Token",
                           {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}),
             "403": _error("inactive account, token of another repository, or credentials over plain HTTP"),
             "404": _error("no such repository")},
            security=READ_AUTH,
            parameters=[{"name": "X-Docker-Token", "in": "header",
                         "schema": {"type": "string", "enum": ["true"]},
                         "description": "`true`: hand out a read token"}]),
    }))
    paths.update(_repository_paths("/auth", {
        "put": _operation("check a token for this repository (documented alternative to GET images)",
                          {"200": _json({"type": "string", "enum": ["OK"]}, "valid"),
                           "400": COMMON_ERRORS["400"],
                           "403": _error("refused, also when the Token is missing"),
                           "404": _error("no such repository")},
                          # Not declared as security: a missing Token is a 403 here (docs/protocol.md 9).
                          description="Send `Authorization: Token ...`; anything else is refused (403)."),
    }))
    paths.update(_repository_paths("/layer/{image_id}/access", {
        "get": _operation("may this token's holder read that layer? (docker-registry 0.9)",
                          {"200": _json({"type": "object", "required": ["access"],
                                         "properties": {"access": {"type": "boolean"}}}, "answer"),
                           "400": COMMON_ERRORS["400"], **TOKEN_ERRORS},
                          security=TOKEN_AUTH),
    }, extra=[IMAGE_ID]))
    return paths


def _registry_paths() -> Json:
    registry_errors = {"4XX": _error("refused: see the message")}
    # 413: past an INDEX_IMAGE_JSON_MAX_BYTES / INDEX_LAYER_* limit; 507: the namespace's quota.
    upload_errors = {**registry_errors, "507": _error("INDEX_NAMESPACE_QUOTA_BYTES reached, or the disk is full")}
    anything = _json({}, "JSON")
    image = [IMAGE_ID]
    paths: Json = {
        "/v1/images/{image_id}/json": {
            "get": _operation("an image's json", {
                "200": _json({"type": "object"}, "the image json",
                             {"X-Docker-Size": {"schema": {"type": "integer"}}}), **registry_errors},
                tag="registry", security=READ_AUTH, parameters=image),
            "put": _operation("store an image's json", {
                "200": anything, **upload_errors},
                tag="registry", security=TOKEN_AUTH, parameters=image,
                description="The id must equal the URL's; a parent must already be complete here. "
                            "An empty or null parent means none (as docker-registry reads it).",
                body=_json_body({"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
                    "parent": {"type": "string", "nullable": True,
                               "pattern": f"^({IMAGE_ID_PATTERN[1:-1]})?$"}}})),
        },
        "/v1/images/{image_id}/layer": {
            "get": _operation("an image's layer (ranged reads allowed)", {
                "200": {"description": "the layer", "content": {"application/octet-stream": {"schema": {
                    "type": "string", "format": "binary"}}}},
                "206": {"description": "part of the layer", "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                **registry_errors}, tag="registry", security=READ_AUTH, parameters=image),
            "put": _operation("upload an image's layer (chunked)", {"200": anything, **upload_errors},
                              tag="registry", security=TOKEN_AUTH, parameters=image,
                              body={"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}),
        },
        "/v1/images/{image_id}/checksum": {
            "put": _operation("confirm an image's checksum", {"200": anything, **registry_errors},
                              tag="registry", security=TOKEN_AUTH, parameters=[
                                  IMAGE_ID,
                                  {"name": "X-Docker-Checksum-Payload", "in": "header",
                                   "schema": {"type": "string", "pattern": CHECKSUM_PATTERN}},
                                  {"name": "X-Docker-Checksum", "in": "header", "schema": {"type": "string"}}]),
        },
        "/v1/images/{image_id}/ancestry": {
            "get": _operation("the image and its parents, newest first", {
                "200": _json({"type": "array", "items": {"type": "string", "pattern": IMAGE_ID_PATTERN}},
                             "ids"), **registry_errors},
                tag="registry", security=READ_AUTH, parameters=image),
        },
    }
    paths.update(_repository_paths("/tags", {
        "get": _operation("tag -> image id", {
            "200": _json({"type": "object", "additionalProperties": {"type": "string"}}, "tags"),
            **registry_errors}, tag="registry", security=READ_AUTH),
        "delete": _operation("delete the repository's tags", {"200": anything, **registry_errors},
                             tag="registry", security=TOKEN_AUTH),
    }))
    paths.update(_repository_paths("/tags/{tag}", {
        "get": _operation("the image id of a tag", {
            "200": _json({"type": "string"}, "image id"), **registry_errors},
            tag="registry", security=READ_AUTH),
        "put": _operation("point a tag at an image", {
            "200": anything, "201": anything, **registry_errors},
            tag="registry", security=TOKEN_AUTH,
            body=_json_body({"type": "string", "pattern": IMAGE_ID_PATTERN})),
        "delete": _operation("remove a tag", {"200": anything, **registry_errors},
                             tag="registry", security=TOKEN_AUTH),
    }, extra=[TAG]))
    nullable_text = {"type": "string", "nullable": True}
    paths.update(_repository_paths("/tags/{tag}/json", {
        "get": _operation("docker-registry 0.9's tag metadata (for third-party v1 tools)", {
            "200": _json({"type": "object", "required": ["last_update", "docker_version", "docker_go_version",
                                                          "arch", "os", "kernel"],
                          "properties": {"last_update": {"type": "integer", "nullable": True},
                                         "docker_version": nullable_text, "docker_go_version": nullable_text,
                                         "arch": {"type": "string"}, "os": {"type": "string"},
                                         "kernel": nullable_text}}, "tag metadata"),
            **registry_errors}, tag="registry", security=READ_AUTH),
    }, extra=[TAG]))
    return paths


# JSON Schema counts characters, the limit is in bytes: 72 characters is right for ASCII only.
PASSWORD = {"type": "string", "minLength": names.MIN_PASSWORD_CHARS, "maxLength": names.MAX_PASSWORD_BYTES,
            "pattern": "^[^\\u0000]*$",
            "description": f"{names.MIN_PASSWORD_CHARS} characters to {names.MAX_PASSWORD_BYTES} bytes of "
                           "UTF-8 (bcrypt's limit), no NUL; longer is a 400, never cut short"}


def _components() -> Json:
    # An empty checksum or Tag counts as none (docker 0.8-1.5 send them empty).
    image = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
        "checksum": {"type": "string", "nullable": True, "pattern": f"^({CHECKSUM_PATTERN[1:-1]})?$"},
        "Tag": {"type": "string", "nullable": True, "pattern": f"^({TAG_PATTERN[1:-1]})?$"}}}
    return {
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "Image": image,
            "ImageList": {"type": "array", "items": {"$ref": "#/components/schemas/Image"},
                          "maxItems": names.MAX_IMAGES_PER_LIST},
            "NewUser": {"type": "object", "required": ["username", "password", "email"], "properties": {
                "username": {"type": "string", "pattern": USERNAME_PATTERN},
                "password": PASSWORD,
                "email": {"type": "string", "format": "email", "maxLength": names.MAX_EMAIL_CHARS},
                "auth": {"description": "sent empty by docker; ignored, whatever its type"}}},
            "UserChange": {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
                "password": PASSWORD,
                "email": {"type": "string", "format": "email", "maxLength": names.MAX_EMAIL_CHARS}}},
            "SearchResults": {"type": "object",
                              "required": ["query", "num_results", "num_pages", "page", "page_size", "results"],
                              "properties": {
                                  "query": {"type": "string"}, "num_results": {"type": "integer"},
                                  "num_pages": {"type": "integer"}, "page": {"type": "integer"},
                                  "page_size": {"type": "integer"},
                                  "results": {"type": "array", "items": {
                                      "type": "object", "required": ["name", "description"], "properties": {
                                          "name": {"type": "string"}, "description": {"type": "string"},
                                          "star_count": {"type": "integer"},
                                          "is_official": {"type": "boolean"}, "is_trusted": {"type": "boolean"},
                                          "is_automated": {"type": "boolean"}}}}}},
        },
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": 'Token signature=...,repository="ns/repo",access=read|write|delete'},
        },
    }


def _operations_paths() -> Json:
    """Health probes and the account activation link (not part of the docker protocol)."""
    status = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    return {
        "/healthz": {"get": _operation("the process is alive", {"200": _json(status, "always")},
                                       tag="operations")},
        "/readyz": {"get": _operation("the data dir is writable and the store lock obtainable", {
            "200": _json(status, "ready"), "503": _error("not ready: the message says why")},
            tag="operations")},
        "/account/activate": {"get": _operation(
            "follow an e-mailed activation link (INDEX_REGISTRATION=confirm)",
            {"200": {"description": "activated, or already confirmed",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             "400": _error("no token, or a token that is invalid or expired"),
             "404": _error("the account no longer exists")},
            tag="operations",
            parameters=[{"name": "token", "in": "query", "required": True,
                         "description": "the signed token of the link", "schema": {"type": "string"}}])},
    }


def document() -> Json:
    """The whole OpenAPI document (a fresh copy each call)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Docker Index API v1", "version": API_VERSION,
                 "description": "A self-hostable Docker Index (API v1) with a built-in v1 registry. "
                                "Every error body is {\"error\": \"<message>\"}."},
        "tags": [{"name": "index", "description": "accounts, repositories, tokens, search"},
                 {"name": "registry", "description": "the built-in v1 registry (docs/protocol.md 10)"},
                 {"name": "operations", "description": "health probes, account activation, metrics"}],
        "paths": {**_index_paths(), **_registry_paths(), **_operations_paths(), **api_paths(),
                  **events_openapi.paths()},
        "components": _with_events_security(_components()),
    }


def _with_events_security(components: Json) -> Json:
    components["securitySchemes"].update(events_openapi.SECURITY_SCHEMES)
    return components


@bp.get("/v1/openapi.json")
def serve() -> Response:
    return json_response(document())
