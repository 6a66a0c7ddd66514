"""A repository named in a URL: the two URL forms of its routes, and the record behind it.

Every repository route exists as ``/v1/repositories/<namespace>/<repository>/...`` and in the
library form ``/v1/repositories/<repository>/...``, which means ``library/<repository>``; both
get distinct endpoint names, so that Werkzeug never redirects from one form to the other.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint

from .errors import NotFound
from .names import LIBRARY, RepoName
from .services import services
from .store import ACTIVE


def repository_route(bp: Blueprint, suffix: str, methods: list[str], **options: Any) -> Callable:
    """Register a view on ``bp`` for the user and the library form of a repository URL."""
    def decorator(view: Callable) -> Callable:
        bp.add_url_rule(f"/v1/repositories/<namespace>/<repository>{suffix}", view.__name__, view,
                        methods=methods, **options)
        bp.add_url_rule(f"/v1/repositories/<repository>{suffix}", f"library_{view.__name__}", view,
                        methods=methods, defaults={"namespace": LIBRARY}, **options)
        return view
    return decorator


def visible_repository(name: RepoName, *, deleting_ok: bool = False) -> dict[str, Any]:
    """The repository record, or 404; one being deleted only when ``deleting_ok`` (a delete token)."""
    record = services().store.get_repository(name.namespace, name.repository)
    if record is None or (record["state"] != ACTIVE and not deleting_ok):
        raise NotFound(f"repository {name.display} not found")
    return record
