"""Logging: one line per request, plain text or JSON lines, and never a secret.

The request line carries only what an operator needs (time, client, user, method, path, status,
bytes, duration). Headers, bodies and query strings are never logged: they are where passwords,
``Authorization`` values, tokens and activation links travel.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, request

from .current import this_g, this_request

LOGGER_NAME = "index"
REQUEST_LOGGER_NAME = "index.requests"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# What quote() leaves alone with safe=_PATH_SAFE and with safe="": nothing to encode.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._~-]*")

request_log = logging.getLogger(REQUEST_LOGGER_NAME)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """``2026-12-03T15:20:00.123Z``; the part up to the second is formatted once a second."""
    global _second
    whole = int(created)
    second, text = _second
    if whole != second:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = (whole, text)
    return f"{text}{int((created - whole) * 1000):03d}Z"


class PlainFormatter(logging.Formatter):
    """``<time> <client> <user> <method> <path> <status> <bytes> <ms>ms`` or ``<time> LEVEL name: msg``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "http", None)
        if fields is not None:
            return (f"{_timestamp(record.created)} {fields['client']} {fields['user']} "
                    f"{fields['method']} {fields['path']} {fields['status']} {fields['bytes']} "
                    f"{fields['duration_ms']}ms")
        line = f"{_timestamp(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: request fields for requests, level/logger/message otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _timestamp(record.created)}
        fields = getattr(record, "http", None)
        if fields is not None:
            entry.update(fields)
        else:
            entry.update(level=record.levelname, logger=record.name, message=record.getMessage())
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is at the time of each record, not at set-up.

    A process that swaps stderr later (pytest's capture, click's test runner) still gets the lines.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass  # StreamHandler.__init__ assigns a stream; the property above decides instead


def configure(config: Mapping[str, Any]) -> None:
    """Send the index's log records to stderr in the configured format (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    formatter = JsonFormatter() if config["LOG_FORMAT"] == "json" else PlainFormatter()
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        logger.addHandler(handler)
    handler.setFormatter(formatter)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def escaped(text: str, limit: int = 64) -> str:
    """Attacker-chosen text (a username tried at login) made safe for one log line."""
    shown = quote(text[:limit], safe="@.-_+~!$&'()*,;=:")
    return shown + ("..." if len(text) > limit else "")


def failed_login(username: str) -> None:
    """One line per refused Basic login: who was tried, from where (the request line says 401)."""
    logging.getLogger(LOGGER_NAME).info("failed login for user %s from %s", escaped(username),
                                        request.remote_addr or "-")


def set_user(username: str | None) -> None:
    """Record who the request acts for, for its log line."""
    if username:
        this_g().log_user = username


def install(app: Flask) -> None:
    """Time every request and write its line once the response is ready."""
    app.before_request(_start_timer)
    app.after_request(_log_request)


def _start_timer() -> None:
    this_g().log_started = time.perf_counter()


def _shown(text: str, unchanged: re.Pattern[str], safe: str) -> str:
    """``quote(text, safe)``, skipped for text that it would leave as it is (most paths)."""
    return text if unchanged.fullmatch(text) else quote(text, safe=safe)


def _log_request(response: Response) -> Response:
    # Every answer comes through here: the record is made directly (no caller look-up, which
    # Logger.info does), a third of what the line cost before.
    if not request_log.isEnabledFor(logging.INFO):
        return response
    answered, context = this_request(), this_g()  # not through the proxies (index.current)
    started = context.get("log_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else 0.0
    length = response.content_length
    fields = {
        "client": answered.remote_addr or "-",
        "user": context.get("log_user") or "-",
        "method": _shown(answered.method, _PLAIN_TOKEN, ""),
        # The path only: query strings may carry tokens (activation links).
        "path": _shown(answered.path, _PLAIN_PATH, _PATH_SAFE),
        "status": response.status_code,
        "bytes": length if length is not None else "-",
        "duration_ms": duration_ms,
    }
    request_log.handle(request_log.makeRecord(
        REQUEST_LOGGER_NAME, logging.INFO, "", 0, "%s %s %s",
        (fields["method"], fields["path"], fields["status"]), None, extra={"http": fields}))
    return response
