"""How clients recognise a v1 index: ``/v1/_ping`` and a ``/v2/`` that is not a v2 registry."""
from __future__ import annotations

from flask import Blueprint, Response

from .errors import error_response
from .payloads import json_response

bp = Blueprint("probes", __name__)

API_VERSION = "0.9.1"  # docker-registry release whose v1 API we speak; <=0.10 clients need the header


@bp.get("/v1/_ping")
@bp.get("/_ping")
def ping() -> Response:
    response = json_response(True)
    response.headers["X-Docker-Registry-Version"] = API_VERSION
    # Without "false", docker over https would send Basic instead of Token to the registry.
    response.headers["X-Docker-Registry-Standalone"] = "false"
    return response


@bp.route("/v2/", methods=["GET", "HEAD"])
def no_v2() -> Response:
    # docker 1.5 probes /v2/ first; no Docker-Distribution-API-Version header => it uses v1.
    return error_response(404, "this is a v1 index: the v2 API is not served here")
