"""One error vocabulary with one JSON shape: ``{"error": "<message>"}``.

Views raise :class:`ApiError` subclasses. The errors of the layers below are mapped to a status
here, once: the store's (:mod:`index.store.errors`: not found 404, already exists / conflict 409,
storage failure 503 or 507, damaged data file 500), an invalid value (:class:`ValidationError`,
400) and a bad activation link (400). A view catches one of those only to answer differently.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .current import this_request
from .names import ValidationError
from .store.errors import AlreadyExists, CorruptDataFile, ImageConflict, RecordNotFound, StorageFailure
from .tokens import ActivationError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with ``status`` and a message a person can act on."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str = "authentication required", *,
                 challenge: str = 'Basic realm="Docker Index"') -> None:
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    """Too many failed logins: try again after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class StorageUnavailable(ApiError):
    """The data dir cannot be written (full disk, I/O error, read-only): nothing was changed."""

    status = 503


class InsufficientStorage(StorageUnavailable):
    status = 507


def json_body(value: object) -> str:
    """Compact JSON without a trailing newline: the bytes real clients compare against."""
    return json.dumps(value, separators=(",", ":"))


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(json_body({"error": message}), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.before_request
    def _no_redirects() -> Response | None:
        # Werkzeug's router answers a path without its rule's trailing slash with a redirect whose
        # Location is built from the Host header (and Flask hands such routing results past the
        # error handlers). An API answers what it has and never sends a client elsewhere.
        if isinstance(this_request().routing_exception, RequestRedirect):
            return error_response(404, "not found: no resource has this exact path")
        return None

    @app.errorhandler(ValidationError)
    @app.errorhandler(ActivationError)
    def _invalid(exc: Exception) -> Response:
        return error_response(BadRequest.status, str(exc))

    @app.errorhandler(RecordNotFound)
    def _not_found(exc: RecordNotFound) -> Response:
        return error_response(NotFound.status, str(exc))

    @app.errorhandler(AlreadyExists)
    @app.errorhandler(ImageConflict)
    def _conflict(exc: AlreadyExists | ImageConflict) -> Response:
        return error_response(Conflict.status, str(exc))

    @app.errorhandler(StorageFailure)
    def _storage(exc: StorageFailure) -> Response:
        log.error("storage failure: %s", exc)
        status = InsufficientStorage.status if exc.no_space else StorageUnavailable.status
        return error_response(status, f"storage unavailable, nothing was changed: {exc}")

    @app.errorhandler(CorruptDataFile)
    def _corrupt(exc: CorruptDataFile) -> Response:
        log.error("%s", exc)
        return error_response(500, "a data file of the index is damaged; "
                                   "the administrator must restore it from a backup")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Routing 404/405 and Werkzeug's own 413 speak the same shape as the API.
        headers = {}
        valid_methods = getattr(exc, "valid_methods", None)
        if exc.code == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        message = (exc.description or exc.name).rstrip(".")
        return error_response(exc.code or 500, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal server error; the index log has the details")
