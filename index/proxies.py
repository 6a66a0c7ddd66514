"""Running behind reverse proxies: whose ``X-Forwarded-*`` to believe, which Host names to serve."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.sansio.utils import host_is_trusted

from .errors import BadRequest
from .health import PATHS as HEALTH_PATHS


def install(app: Flask, config: Mapping[str, Any]) -> None:
    """Trust exactly ``PROXY_COUNT`` proxies, and refuse Host headers outside ``TRUSTED_HOSTS``."""
    count = config["PROXY_COUNT"]
    if count:
        # Each proxy appends one value; only the last ``count`` were written by proxies we run.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count,  # type: ignore[method-assign]
                                x_port=count, x_prefix=count)
    trusted = list(config["TRUSTED_HOSTS"])
    # Flask reads the same key and would refuse untrusted hosts during routing, before the health
    # exemption below; the check is ours alone (the list stays in the services' config).
    app.config["TRUSTED_HOSTS"] = None
    if trusted:
        app.before_request(lambda: _check_host(trusted))


def _check_host(trusted: list[str]) -> None:
    # Health probes come from orchestrators and load balancers that address the container by IP.
    if request.path in HEALTH_PATHS:
        return
    host = request.host
    if not host_is_trusted(host, trusted):
        raise BadRequest(f"host {host[:100]!r} is not served here (see INDEX_TRUSTED_HOSTS)")
