"""The objects behind Flask's ``request``, ``g`` and ``current_app`` proxies.

Every attribute read through one of those proxies looks its object up again (werkzeug's
``LocalProxy``): about 1.4 µs on the 2-core bench machine, against 0.07 µs on the object itself. A
pull's hooks and helpers read some thirty such attributes, about a tenth of the app's time for it
(bench/README.md, "Proxies"). Code that runs on every request takes the object once, from here,
and reads from it.
"""
from __future__ import annotations

from typing import cast

from flask import Flask, Request, current_app, g, request
from flask.ctx import _AppCtxGlobals


def this_request() -> Request:
    """The request being answered (outside a request: RuntimeError, as the proxy raises)."""
    return cast(Request, request._get_current_object())  # type: ignore[attr-defined]


def this_g() -> _AppCtxGlobals:
    """``flask.g`` of the request being answered."""
    return cast(_AppCtxGlobals, g._get_current_object())


def this_app() -> Flask:
    """The app answering (``flask.current_app`` itself)."""
    return cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
