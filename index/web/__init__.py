"""The web interface: server-rendered pages (Jinja2) over the same data and permissions as the API.

Pages work without JavaScript; none is served. Every page answers with a Content-Security-Policy
that allows only this site's stylesheet and forms, so injected markup could neither run script
nor load anything. Forms that change something carry a CSRF token (:mod:`.session`).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template, request

from ..errors import ApiError
from ..names import ValidationError
from ..store import AlreadyExists, RecordNotFound, StorageFailure
from . import render, session

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


def install(app: Flask, secret_key: str) -> None:
    """Register the pages (called by create_app)."""
    from . import account, admin, manage, pages  # noqa: F401  (routes register on import)
    session.init_app(app, secret_key)
    app.register_blueprint(bp)


@bp.before_request
def _check_forms() -> None:
    if request.method == "POST":
        session.check_csrf()


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if response.mimetype == "text/html":
        # Pages depend on who is signed in: never from a shared cache.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_filter("when")
def _when(value: str | None) -> str:
    return render.when(value)


@bp.app_template_filter("size")
def _size(value: int | None) -> str:
    return render.size(value)


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"viewer": session.current_user(), "csrf_token": session.csrf_token}


@bp.errorhandler(ApiError)
def _error_page(exc: ApiError) -> tuple[str, int, dict[str, str]]:
    """The API's errors, as a page (same status and message)."""
    headers = {k: v for k, v in exc.headers.items() if k != "WWW-Authenticate"}
    return render_template("error.html", status=exc.status, message=exc.message), exc.status, headers


@bp.errorhandler(ValidationError)
@bp.errorhandler(RecordNotFound)
@bp.errorhandler(AlreadyExists)
@bp.errorhandler(StorageFailure)
def _store_error_page(exc: Exception) -> tuple[str, int]:
    """Bad input and store errors, with the status the API gives them (see index.errors)."""
    if isinstance(exc, StorageFailure):
        status = 507 if exc.no_space else 503
        message = f"storage unavailable, nothing was changed: {exc}"
    else:
        status = {ValidationError: 400, RecordNotFound: 404, AlreadyExists: 409}[type(exc)]
        message = str(exc)
    return render_template("error.html", status=status, message=message), status
