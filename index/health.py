"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work): cheap, no auth."""
from __future__ import annotations

import os
import tempfile

from flask import Blueprint, Response, current_app

from .errors import error_response
from .payloads import json_response
from .services import services

bp = Blueprint("health", __name__)

PATHS = ("/healthz", "/readyz")
LOCK_PROBE_SECONDS = 2.0


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    problem = _readiness_problem()
    if problem:
        return error_response(503, f"not ready: {problem}")
    return json_response({"status": "ready"})


def _readiness_problem() -> str | None:
    """What keeps the index from serving writes, or None when nothing does."""
    found = services()
    data_dir = current_app.config["DATA_DIR"]
    try:
        os.listdir(data_dir)
        # Creating a file is the only honest test of writability (read-only mounts, full disks).
        with tempfile.TemporaryFile(dir=data_dir, prefix=".readyz-"):
            pass
    except OSError as exc:
        return f"data directory {data_dir} is not readable and writable ({exc.strerror})"
    try:
        if not found.store.users_lock_available(LOCK_PROBE_SECONDS):
            return f"the store's lock was not obtained within {LOCK_PROBE_SECONDS:g} s"
    except OSError as exc:
        return f"the store's lock cannot be taken ({exc.strerror})"
    return None
