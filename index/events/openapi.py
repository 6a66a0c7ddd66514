"""The OpenAPI description of the events routes, merged into :func:`index.openapi.document`."""
from __future__ import annotations

from typing import Any

Json = dict[str, Any]

# The same patterns as the rest of the document, copied (index.openapi imports this module);
# tests/events/test_webhooks.py keeps the copies equal.
_NAMESPACE_PATTERN = r"^[a-z0-9_]+(-[a-z0-9_]+)*$"
_REPOSITORY_PATTERN = r"^\.?([a-z0-9_-]+\.)*[a-z0-9_-]+\.?$"
BASIC: list[Json] = [{"basic": []}]
ERROR = {"$ref": "#/components/schemas/Error"}


def _param(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


NAMESPACE = _param("namespace", {"type": "string", "pattern": _NAMESPACE_PATTERN, "minLength": 2, "maxLength": 30},
                   "the repository's namespace")
REPOSITORY = _param("repository", {"type": "string", "pattern": _REPOSITORY_PATTERN, "maxLength": 128},
                    "the repository's name")
ORG = _param("org", {"type": "string", "pattern": _NAMESPACE_PATTERN, "minLength": 2, "maxLength": 30},
             "an organization (or any namespace its caller administers)")
UUID = _param("uuid", {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
              "the notification's uuid")


def _error(description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


AUTH_ERRORS = {"400": _error("an invalid namespace or repository name in the URL"),
               "401": _error("no or wrong credentials"),
               "403": _error("not an admin of this repository or namespace, or account inactive"),
               "429": _error("too many failed logins")}

ATTEMPT = {"type": "object", "properties": {
    "at": {"type": "string"}, "delivery": {"type": "string"}, "event": {"type": "string"},
    "attempt": {"type": "integer"}, "status": {"type": "integer", "nullable": True},
    "duration_ms": {"type": "number"}, "error": {"type": "string", "nullable": True}}}
NOTIFICATION = {"type": "object", "required": ["uuid", "event", "method", "config", "title"], "properties": {
    "uuid": {"type": "string"}, "event": {"type": "string", "enum": ["repo_push", "repo_delete", "tag_delete"]},
    "method": {"type": "string", "enum": ["webhook"]}, "title": {"type": "string"},
    "config": {"type": "object", "required": ["url"], "properties": {
        "url": {"type": "string"},
        "secret": {"type": "string", "description": "only in the 201 answer, and only when generated"}}},
    "event_config": {"type": "object"},
    "number_of_failures": {"type": "integer", "description": "failed attempts since the last delivery (of the last 10)"},
    "namespace": {"type": "string"}, "repository": {"type": "string", "nullable": True},
    "created": {"type": "string"}, "created_by": {"type": "string"},
    "attempts": {"type": "array", "items": ATTEMPT, "description": "the last delivery attempts, newest first"}}}
NEW_NOTIFICATION = {"type": "object", "required": ["event", "config"], "additionalProperties": False, "properties": {
    "event": {"type": "string", "enum": ["repo_push", "repo_delete", "tag_delete"]},
    "method": {"type": "string", "enum": ["webhook"]},
    "title": {"type": "string", "maxLength": 200},
    "eventConfig": {"type": "object", "description": "accepted for Quay compatibility; ignored"},
    "config": {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
        "url": {"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://"},
        "secret": {"type": "string", "minLength": 16, "maxLength": 256}}}}}
LOG_PAGE = {"type": "object", "required": ["logs", "page", "per_page", "has_more"], "properties": {
    "logs": {"type": "array", "items": {"type": "object", "required": ["at", "event"], "properties": {
        "at": {"type": "string"}, "event": {"type": "string"}, "user": {"type": "string", "nullable": True},
        "client": {"type": "string", "nullable": True}, "repository": {"type": "string"}}}},
    "page": {"type": "integer"}, "per_page": {"type": "integer"}, "has_more": {"type": "boolean"},
    "next_page": {"type": "integer"}}}


def _op(summary: str, responses: Json, parameters: list[Json], *, body: Json | None = None,
        tag: str = "index", security: list[Json] | None = None, query: list[Json] | None = None) -> Json:
    operation: Json = {"tags": [tag], "summary": summary, "responses": responses,
                       "security": BASIC if security is None else security,
                       "parameters": [*parameters, *(query or [])]}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _notification_paths(prefix: str, parameters: list[Json], what: str) -> Json:
    missing = _error(f"no such {what} (or notification)")
    return {
        f"{prefix}/notification/": {
            "get": _op(f"list the webhooks of a {what}", {
                "200": _json({"type": "object", "required": ["notifications"], "properties": {
                    "notifications": {"type": "array", "items": NOTIFICATION}}}, "the notifications"),
                **AUTH_ERRORS, "404": missing}, parameters),
            "post": _op(f"add a webhook to a {what}", {
                "201": _json(NOTIFICATION, "created; a generated secret is in config.secret, shown once"),
                "400": _error("invalid body, or a URL that is refused (private address without "
                              "INDEX_WEBHOOK_ALLOW_PRIVATE, unresolvable host)"),
                **AUTH_ERRORS, "404": missing, "409": _error("too many notifications here"),
                "413": _error("body too large"), "415": _error("body is not JSON")},
                parameters, body=NEW_NOTIFICATION),
        },
        f"{prefix}/notification/{{uuid}}": {
            "get": _op("one webhook with its last delivery attempts",
                       {"200": _json(NOTIFICATION, "the notification"), **AUTH_ERRORS, "404": missing},
                       [*parameters, UUID]),
            "delete": _op("remove a webhook (pending deliveries to it are dropped)",
                          {"204": {"description": "removed"}, **AUTH_ERRORS, "404": missing},
                          [*parameters, UUID]),
        },
        f"{prefix}/notification/{{uuid}}/test": {
            "post": _op("queue a test delivery (body has \"test\": true)", {
                "200": _json({"type": "object", "required": ["delivery"],
                              "properties": {"delivery": {"type": "string"}}}, "queued; its X-Index-Delivery id"),
                **AUTH_ERRORS, "404": missing}, [*parameters, UUID]),
        },
    }


def _query(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LOG_QUERY = [
    _query("page", {"type": "integer", "minimum": 1, "maximum": 10000}, "1 = newest records"),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 500}, "records per page (default 50)"),
    _query("user", {"type": "string"}, "who acted (or the username a failed login typed)"),
    _query("event", {"type": "string", "enum": [
        "login", "login_failed", "lockout", "register", "activate", "account_change", "account_delete",
        "role_change", "grant_change", "visibility_change", "repository_create", "repository_delete",
        "push", "tag_delete", "token_refused", "notification_create", "notification_delete"]}, "one event"),
    _query("since", {"type": "string", "pattern": r"^([0-9]{1,7}[smhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})?)?)?$"},
           "2026-01-31, 2026-01-31T12:00:00Z, or an age such as 2h or 7d (empty: no limit)"),
]


def paths() -> Json:
    log_errors = {"400": _error("an invalid page, per_page, event or since"), **AUTH_ERRORS}
    superuser_query = [*LOG_QUERY, _query("repository", {"type": "string"}, "namespace/name")]
    return {
        **_notification_paths("/api/v1/repository/{namespace}/{repository}", [NAMESPACE, REPOSITORY], "repository"),
        **_notification_paths("/api/v1/organization/{org}", [ORG], "organization"),
        **_notification_paths("/api/v1/user", [], "the caller's own namespace"),
        "/api/v1/superuser/logs": {"get": _op(
            "the audit trail, newest first (site administrators)",
            {"200": _json(LOG_PAGE, "one page of records"), **log_errors}, [], query=superuser_query)},
        "/api/v1/repository/{namespace}/{repository}/logs": {"get": _op(
            "a repository's audit records, newest first (its admins)",
            {"200": _json(LOG_PAGE, "one page of records"), **log_errors, "404": _error("no such repository")},
            [NAMESPACE, REPOSITORY], query=LOG_QUERY)},
        "/metrics": {"get": _op(
            "Prometheus metrics (text format): loopback clients, or Authorization: Bearer INDEX_METRICS_TOKEN",
            {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
             "401": _error("INDEX_METRICS_TOKEN is set and the bearer token is missing or wrong"),
             "403": _error("not from loopback and no INDEX_METRICS_TOKEN is set")},
            [], tag="operations", security=[{}, {"bearer": []}])},
    }


SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "description": "INDEX_METRICS_TOKEN"}}
