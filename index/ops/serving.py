"""``python -m index serve`` (what ``make run`` runs): check everything, then hand over to granian.

The app is built once in the main process before any worker forks (like gunicorn's
``--preload``), so a bad setting, an unusable data dir or a damaged data file stops the start
with one line naming it, instead of a storm of worker boot failures. The workers then serve that
app through :class:`~index.wsgi_on_rsgi.WsgiOnRsgi` on granian's RSGI interface: request
headers and bodies are read by granian's Rust event loop under the header timeout and the
minimum body rate, so slow clients hold no Python thread (bench/README.md: "Server choice").
"""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import Flask

from .. import mail
from ..config import ConfigError, describe, load_config
from ..events.metrics import prepare_multiprocess_dir
from ..services import EXTENSION_KEY, Services
from ..store import CorruptDataFile, StorageFailure
from .malloc import limit_heap_growth
from .preflight import PreflightError, check_port_free
from .quick_requests import quick_request_test
from .wsgi_on_rsgi import WsgiOnRsgi

log = logging.getLogger("index")

# On SIGTERM, requests in flight (a layer upload, say) get this long to finish; then the worker
# is killed.
GRACEFUL_TIMEOUT_SECONDS = 30
# Connections waiting to be accepted; slow clients are cheap for the event loop, so keep room.
BACKLOG = 2048


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: what a start with a bad setting prints."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def create_app_or_exit(config: Mapping[str, Any] | None = None) -> Flask:
    """create_app, with start-up problems reduced to one clear line."""
    from .. import create_app
    try:
        return create_app(config)
    except ConfigError as exc:
        fail(str(exc))
    except (StorageFailure, CorruptDataFile) as exc:
        fail(str(exc))
    except ValueError as exc:  # bootstrap admin with an invalid name or password, empty key file
        fail(str(exc))


def log_effective_settings(app: Flask) -> None:
    """The one start-up line with every setting (secrets masked): only a serving process logs it."""
    log.info("docker index ready; effective settings: %s",
             json.dumps(describe(app.config), default=str))


def rsgi_app(app: Flask, settings: Mapping[str, Any]) -> WsgiOnRsgi:
    """The Flask app as granian's workers call it: bodies read under the rate deadline, the
    handshake's reads answered on the event loop's thread (:mod:`.quick_requests`)."""
    found: Services = app.extensions[EXTENSION_KEY]
    return WsgiOnRsgi(app, threads=settings["THREADS"], min_body_rate=settings["MIN_BODY_RATE"],
                      body_grace=float(settings["HEADER_TIMEOUT"]),
                      inline=quick_request_test(found.credentials))


def granian_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Granian's settings from ours: bind, workers, header timeout, TLS, logging, graceful stop."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings

    formatter = "index.logs.JsonFormatter" if settings["LOG_FORMAT"] == "json" else "index.logs.PlainFormatter"
    options: dict[str, Any] = {
        "address": settings["HOST"],
        "port": settings["PORT"],
        "interface": Interfaces.RSGI,
        "workers": settings["WORKERS"],
        "http": HTTPModes.http1,  # what docker clients speak; one protocol to defend
        "websockets": False,
        "backlog": BACKLOG,
        "http1_settings": HTTP1Settings(header_read_timeout=settings["HEADER_TIMEOUT"] * 1000),
        # A worker that dies (kill -9, out of memory) is replaced, as gunicorn did.
        "respawn_failed_workers": True,
        "respawn_interval": 1.0,
        "workers_kill_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "log_access": False,  # the app writes one line per request itself (index.logs)
        "log_dictconfig": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"index": {"()": formatter}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "index",
                                    "stream": "ext://sys.stderr"}},
            "loggers": {"_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
        },
    }
    if settings["TLS_CERT"]:
        options.update(ssl_cert=Path(settings["TLS_CERT"]), ssl_key=Path(settings["TLS_KEY"]),
                       ssl_protocol_min=SSLProtocols.tls12)  # docker clients of the v1 era
    return options


def serve() -> None:
    """Validate the settings, build the app, then run granian until SIGTERM/SIGINT."""
    from granian.server import Server

    try:
        settings = load_config()
        check_port_free(settings["HOST"], settings["PORT"])  # before anything says "ready"
    except (ConfigError, PreflightError) as exc:
        fail(str(exc))
    prepare_multiprocess_dir()  # before any worker exists: /metrics then adds up every worker
    limit_heap_growth()  # inherited by the workers
    app = create_app_or_exit()
    log_effective_settings(app)
    mail.log_probe(app.config)  # confirm mode: say now whether activation mail will go out
    served = rsgi_app(app, settings)
    server = Server("index", **granian_options(settings))
    # Workers are forked from this process and use the app built above.
    # granian types the loaded target as a callable (a WSGI/ASGI app); an RSGI app is an object
    # with __rsgi__, which granian accepts at run time.
    server.serve(target_loader=lambda *args, **kwargs: served, wrap_loader=False)  # type: ignore[arg-type]


@click.command("serve")
def serve_command() -> None:
    """Serve the index with granian (workers, timeouts and TLS from the INDEX_* settings)."""
    serve()
