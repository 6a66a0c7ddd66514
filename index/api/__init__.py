"""The management API under ``/api/v1``, in Quay's REST shapes (endpoints/api/ of quay/quay):
repositories and their visibility, per-repository grants, organizations, teams and robots.

JSON in and out, Basic credentials; errors are ``{"error": ...}`` as everywhere: 400 bad body,
401 no or wrong credentials, 403 authenticated but not an admin of that thing, 404 unknown or not
visible to the caller, 409 name taken. Each area is its own module registering on :data:`bp`;
other parts of the index add their own modules the same way.
"""
from __future__ import annotations

from flask import Flask

from .. import principals
from . import organization, repository, robots  # noqa: F401  (register their routes)
from .common import bp

__all__ = ["bp", "install"]


def install(app: Flask, secret_key: str, fallback_keys: list[str]) -> None:
    """Register the routes; robots' tokens derive from these keys. (Its admin CLI commands,
    :mod:`index.api.cli`, are registered with every other command in :mod:`index.ops.commands`.)"""
    principals.install_keys(app, secret_key, fallback_keys)
    app.register_blueprint(bp)
