"""Browsing: home, search, a repository, a namespace. Only what the viewer may read is shown."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import names, permissions, search
from ..errors import Forbidden, NotFound
from ..names import LIBRARY, RepoName
from ..services import services
from ..store import ACTIVE
from ..store.records import Principal, RepositoryRecord
from . import bp, images, render
from .session import current_user

RECENT_ON_HOME = 10
SEARCH_PAGE_SIZE = 25


def _readable(name: RepoName, viewer: Principal | None) -> RepositoryRecord:
    """The active repository ``name`` if ``viewer`` may read it; a 404 (the same as for a
    missing one) otherwise, so private names do not leak."""
    record = services().store.get_repository(name.namespace, name.repository)
    if record is None or record["state"] != ACTIVE or not permissions.can_read(viewer, name):
        raise NotFound(f"repository {name.display} not found")
    return record


def _name_of(record: Mapping[str, Any]) -> RepoName:
    return RepoName(record["namespace"], record["name"])


@bp.get("/")
def home() -> str:
    viewer = current_user()
    store = services().store
    recent: list[dict[str, Any]] = []
    for pushed_at, full in services_activity().latest_pushes():
        namespace, _, repository = full.partition("/")
        record = store.get_repository(namespace, repository)
        if record is None or record["state"] != ACTIVE or not permissions.can_read(viewer, _name_of(record)):
            continue
        recent.append({"record": record, "name": _name_of(record), "pushed": pushed_at})
        if len(recent) == RECENT_ON_HOME:
            break
    return render_template("home.html", host=render.public_host(), recent=recent)


def services_activity() -> Any:
    return services().activity


@bp.get("/search")
def search_page() -> str:
    query = request.args.get("q", "")
    if len(query) > search.MAX_QUERY_CHARS:
        query = query[:search.MAX_QUERY_CHARS]
    page = request.args.get("page", "1")
    page_number = int(page) if page.isascii() and page.isdigit() and 0 < int(page) < 10**6 else 1
    total, found = search.find(query, (page_number - 1) * SEARCH_PAGE_SIZE, SEARCH_PAGE_SIZE, current_user())
    pages = max(1, math.ceil(total / SEARCH_PAGE_SIZE))
    return render_template("search.html", query=query, total=total, results=found,
                           page=page_number, pages=pages)


@bp.get("/repository/<namespace>/<repository>")
def repository_page(namespace: str, repository: str) -> str:
    viewer = current_user()
    name = names.repo_name(namespace, repository)
    record = _readable(name, viewer)
    tags = images.tag_rows(name, record)
    chosen = request.args.get("tag") or ("latest" if "latest" in record.get("tags", {}) else
                                         (tags[0]["tag"] if tags else None))
    history = images.history(name, record, chosen) if chosen else None
    return render_template(
        "repository.html", name=name, record=record, tags=tags, chosen=chosen, history=history,
        stats=services().activity.of(name.full), host=render.public_host(),
        description=render.markdown(record.get("description", "")),
        can_write=permissions.can_write(viewer, name), can_admin=permissions.can_admin(viewer, name))


@bp.post("/repository/<namespace>/<repository>/description")
def edit_description(namespace: str, repository: str) -> BaseResponse:
    viewer = current_user()
    name = names.repo_name(namespace, repository)
    _readable(name, viewer)
    if not permissions.can_write(viewer, name):
        raise Forbidden(f"you may not change repository {name.display}")
    text = names.description(request.form.get("description", ""))
    services().store.set_description(name.namespace, name.repository, text)
    return redirect(url_for("web.repository_page", namespace=name.namespace, repository=name.repository), 303)


@bp.get("/namespace/<namespace>")
def namespace_page(namespace: str) -> str:
    viewer = current_user()
    if not names.NAMESPACE_RE.fullmatch(namespace):
        raise NotFound(f"namespace {namespace[:64]} not found")
    store = services().store
    repositories = [record for record in store.iter_repositories(namespace)
                    if record["state"] == ACTIVE and permissions.can_read(viewer, _name_of(record))]
    owner = store.find_user(namespace) if namespace != LIBRARY else None
    organization = _organization(namespace, viewer)
    if not repositories and owner is None and organization is None and namespace != LIBRARY:
        raise NotFound(f"namespace {namespace} not found")
    return render_template("namespace.html", namespace=namespace, owner=owner,
                           organization=organization,
                           repositories=sorted(repositories, key=lambda r: r["name"]),
                           can_manage=permissions.can_admin_namespace(viewer, namespace))


def _organization(namespace: str, viewer: Principal | None) -> dict[str, Any] | None:
    """The organization's teams and members, for viewers allowed to see them (see manage)."""
    from . import manage
    return manage.organization_view(namespace, viewer)
