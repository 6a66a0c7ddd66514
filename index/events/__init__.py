"""Events: the audit trail, webhooks (outbox and delivery), and Prometheus metrics.

Views call the one-line hooks below (``events.push_completed(...)``, ``events.record(...)``);
everything else (files, threads, signatures, metrics) stays in this package.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask, Request, Response, current_app, g, has_request_context, request

from ..current import this_app, this_g, this_request
from ..names import RepoName
from ..services import EXTENSION_KEY as SERVICES_KEY
from ..store.errors import storage_failure
from ..store.records import RepositoryRecord
from .audit import AuditTrail, now_iso
from .delivery import Dispatcher
from .metrics import Metrics, StateCollector, count, directory_bytes, metrics
from .notifications import Notifications
from .outbox import OUTBOX_FOLDER, Outbox

log = logging.getLogger(__name__)

EXTENSION_KEY = "docker_index_events"
CLI_ACTOR = "(cli)"


@dataclass
class Events:
    """What the hooks need, built once per app."""

    audit: AuditTrail
    notifications: Notifications
    outbox: Outbox
    dispatcher: Dispatcher
    state: StateCollector
    config: dict[str, Any]
    deliver_in_background: bool


def install(app: Flask) -> Events:
    """Build the app's events, register their routes and commands, and start delivering."""
    from . import api
    found = app.extensions[SERVICES_KEY]
    config = app.config
    notifications = Notifications(found.store)
    outbox = Outbox(config["DATA_DIR"])
    dispatcher = Dispatcher(outbox, notifications, config,
                            on_outcome=lambda event, outcome: count(lambda m: m.deliveries.labels(event, outcome).inc()))

    def read_state() -> dict[str, float]:
        return {"index_webhook_outbox_depth": outbox.depth(),
                "index_repositories": sum(1 for _ in found.store.iter_repositories()),
                "index_stored_bytes": directory_bytes(config["DATA_DIR"], skip=(OUTBOX_FOLDER,))}

    events = Events(audit=AuditTrail(config["DATA_DIR"], config["AUDIT_MAX_BYTES"], config["AUDIT_KEEP_FILES"]),
                    notifications=notifications, outbox=outbox, dispatcher=dispatcher,
                    state=StateCollector(read_state), config=config,
                    deliver_in_background=not app.testing)
    app.extensions[EXTENSION_KEY] = events
    metrics()  # made now, before a server forks its workers
    app.register_blueprint(api.bp)  # (its commands: index.ops.commands)
    app.before_request(_before_request)
    app.after_request(_after_request)
    if events.deliver_in_background:
        # Server workers forked from this process deliver; so does this process once it serves a
        # request, or right away when it is not running a command-line command (gunicorn wsgi:app).
        dispatcher.start_in_forked_children()
        if click.get_current_context(silent=True) is None:
            dispatcher.start()
    return events


def current() -> Events:
    events: Events = this_app().extensions[EXTENSION_KEY]
    return events


def shutdown(app: Flask) -> None:
    """Stop this app's delivery thread (an embedded index being stopped)."""
    found = app.extensions.get(EXTENSION_KEY)
    if found is not None:
        found.dispatcher.stop()


# -- request hooks: metrics --------------------------------------------------------------------
def _before_request() -> None:
    this_g().events_started = time.perf_counter()
    found = current()
    if found.deliver_in_background:
        found.dispatcher.start()  # no-op once running in this process


def _after_request(response: Response) -> Response:
    count(lambda measured: _count_request(measured, response))
    return response


def _count_request(measured: Metrics, response: Response) -> None:
    answered = this_request()  # not through the proxy (index.current)
    started = this_g().get("events_started")
    url_rule = answered.url_rule
    rule = url_rule.rule if url_rule is not None else "(unmatched)"
    method = answered.method if answered.method in ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS") else "OTHER"
    counter, latency = measured.request_series(rule, method, response.status_code)
    counter.inc()
    if started is not None:
        latency.observe(time.perf_counter() - started)
    if 200 <= response.status_code < 300:
        _count_traffic(measured, rule, method, response, answered)


def _count_traffic(measured: Metrics, rule: str, method: str, response: Response, answered: Request) -> None:
    if rule.endswith("/layer") and rule.startswith("/v1/images/"):
        if method == "GET" and response.content_length:
            measured.layer_bytes_out.inc(response.content_length)  # a Range answer: its part
    elif (rule.startswith("/v1/repositories/") and rule.endswith("/images") and method == "GET"
          and not answered.headers.get("Authorization", "").lower().startswith("token")):
        measured.pulls.inc()  # a docker client (not a registry checking a token) starts a pull


# -- the audit trail -----------------------------------------------------------------------------
def record(event: str, *, user: str | None = None, repository: RepoName | str | None = None,
           **details: object) -> None:
    """Append one audit record. ``user`` is who acted (default: the request's user).

    A trail that cannot be written is logged as an error; the action itself goes ahead.
    """
    entry: dict[str, Any] = {"at": now_iso(), "event": event}
    if has_request_context():
        entry["user"] = user if user is not None else g.get("log_user")
        entry["client"] = request.remote_addr or None
    else:
        entry["user"] = user if user is not None else CLI_ACTOR
        entry["via"] = "cli"
    if repository is not None:
        entry["repository"] = repository.full if isinstance(repository, RepoName) else repository
    entry.update(details)
    try:
        current().audit.append(entry)
    except Exception as exc:  # a full disk, a lock held too long
        log.error("could not write the audit record %s: %s", entry, exc)


# -- hooks of the docker flows -------------------------------------------------------------------
def layer_received(size: int) -> None:
    """A layer upload was stored (its body's size; chunked uploads announce none)."""
    count(lambda measured: measured.layer_bytes_in.inc(size))


def signed_in(username: str) -> None:
    record("login", user=username)


def login_failed(username: str, address: str) -> None:
    count(lambda measured: measured.failed_logins.inc())
    record("login_failed", user=None, username=username, address=address)


# A locked-out client may keep knocking (each answered 429 without bcrypt): the trail gets one
# lockout record per username and address a minute, the metric counts every refusal.
LOCKOUT_RECORD_SECONDS = 60.0
_MAX_REMEMBERED_LOCKOUTS = 10_000
_lockouts_recorded: dict[tuple[str, str], float] = {}
_lockouts_lock = threading.Lock()


def locked_out(username: str, address: str) -> None:
    count(lambda measured: measured.lockouts.inc())
    key, now = (username[:64], address), time.monotonic()
    with _lockouts_lock:
        if now - _lockouts_recorded.get(key, -LOCKOUT_RECORD_SECONDS) < LOCKOUT_RECORD_SECONDS:
            return
        if len(_lockouts_recorded) >= _MAX_REMEMBERED_LOCKOUTS:
            _lockouts_recorded.clear()
        _lockouts_recorded[key] = now
    record("lockout", user=None, username=username, address=address)


def token_refused(reason: str) -> None:
    record("token_refused", reason=reason, path=request.path if has_request_context() else None)


def repository_created(name: RepoName, username: str) -> None:
    record("repository_create", user=username, repository=name)


def push_completed(name: RepoName, username: str, repository: Mapping[str, Any]) -> None:
    """docker's final ``PUT .../images``: one push done; audit it and queue its webhooks."""
    tags = dict(repository.get("tags") or {})
    count(lambda measured: measured.pushes.inc())
    record("push", user=username, repository=name, tags=tags,
           images=[image["id"] for image in repository.get("images", [])])
    _notify("repo_push", name, tags, username)


def repository_deleted(name: RepoName, username: str | None, removed: Mapping[str, Any]) -> None:
    record("repository_delete", user=username, repository=name)
    _notify("repo_delete", name, dict(removed.get("tags") or {}), username)


class AccountRemoval:
    """What a deleted account's repositories and records set off (``accounts.DeletionHooks``):
    each removed repository is audited and heard by its ``repo_delete`` webhooks like any other
    delete, its counts go, and the account's webhooks are retired (pending deliveries, such as
    those ``repo_delete`` ones, still go out; nothing new reaches them, and a later account of
    the name neither sees nor inherits them)."""

    def __init__(self, actor: str | None = None) -> None:
        self.actor = actor

    def repository_removed(self, name: RepoName, removed: RepositoryRecord) -> None:
        current_app.extensions[SERVICES_KEY].activity.forget(name.full)
        repository_deleted(name, self.actor, removed)

    def repository_moved(self, old: RepoName, record: RepositoryRecord) -> None:
        current_app.extensions[SERVICES_KEY].activity.forget(old.full)

    def account_removed(self, username: str) -> None:
        found = current()
        retired = found.notifications.retire_namespace(username)
        queued = {entry["notification"] for entry in found.outbox.pending()}
        for uuid in retired:
            if uuid not in queued:  # else the dispatcher removes it after the last delivery
                found.notifications.delete(uuid)
            record("notification_delete", user=self.actor, repository=username, notification=uuid,
                   reason="account deleted")


def tags_deleted(name: RepoName, username: str | None, tags: dict[str, str]) -> None:
    record("tag_delete", user=username, repository=name, tags=tags)
    _notify("tag_delete", name, tags, username)


def _public_host() -> str | None:
    configured: str | None = current_app.config.get("PUBLIC_HOST")
    if configured:
        return configured
    return request.host if has_request_context() else None


def event_body(event: str, event_id: str, namespace: str, name: str | None, tags: dict[str, str],
               actor: str | None, **extra: Any) -> bytes:
    body = {"event": event, "id": event_id, "repository": f"{namespace}/{name}" if name else None,
            "namespace": namespace, "name": name, "tags": tags, "pushed_by": actor,
            "at": now_iso(), "index": _public_host(), **extra}
    return json.dumps(body, separators=(",", ":")).encode()


def _notify(event: str, name: RepoName, tags: dict[str, str], actor: str | None) -> None:
    """Queue one delivery per listening notification, durably, before the caller answers."""
    found = current()
    listening = found.notifications.listening(event, name.namespace, name.repository)
    if not listening:
        return
    event_id = found.outbox.new_event_id()
    body = event_body(event, event_id, name.namespace, name.repository, tags, actor)
    try:
        for notification in listening:
            found.outbox.add(event_id, notification["uuid"], event, body)
    except OSError as exc:
        # The client must not be told "done" for an event that could not be queued.
        raise storage_failure(f"queue the {event} webhook", exc) from None
    found.dispatcher.wake()


class TooManyNotifications(ValueError):
    """The scope already has the most webhooks allowed (the API answers 409)."""


def add_notification(data: object, namespace: str, repository: str | None, actor: str | None) -> tuple[dict[str, Any], str | None]:
    """Validate a webhook in Quay's shape, check its target, store it and audit it.

    Returns the notification and its generated secret (None when ``data`` gave one). Raises
    :class:`~index.events.notifications.NotificationError` or
    :class:`~index.events.targets.TargetRefused` (both ValueError: a 400) or
    :class:`TooManyNotifications`. The API, the CLI and the web pages all add webhooks here.
    """
    from .notifications import NotificationError, validate
    from .targets import parse_url, resolve
    found = current()
    fields = validate(data)
    resolve(parse_url(fields["url"]), found.config["WEBHOOK_ALLOW_PRIVATE"])
    try:
        created, generated = found.notifications.create(fields, namespace, repository, created_by=actor or CLI_ACTOR)
    except NotificationError as exc:
        raise TooManyNotifications(str(exc)) from None
    record("notification_create", user=actor, repository=_scope_text(namespace, repository),
           notification=created["uuid"], notification_event=created["event"], url=created["url"])
    return created, generated


def remove_notification(notification: dict[str, Any], actor: str | None) -> None:
    """Remove a webhook (its pending deliveries are then dropped) and audit it."""
    current().notifications.delete(notification["uuid"])
    record("notification_delete", user=actor,
           repository=_scope_text(notification["namespace"], notification["repository"]),
           notification=notification["uuid"])


def _scope_text(namespace: str, repository: str | None) -> str:
    return f"{namespace}/{repository}" if repository else namespace


def queue_test(notification: dict[str, Any], actor: str) -> str:
    """Queue a test delivery to one notification; returns its id."""
    found = current()
    event_id = found.outbox.new_event_id()
    repository = notification["repository"]
    body = event_body(notification["event"], event_id, notification["namespace"], repository, {}, actor, test=True)
    try:
        found.outbox.add(event_id, notification["uuid"], notification["event"], body)
    except OSError as exc:
        raise storage_failure("queue the test delivery", exc) from None
    found.dispatcher.wake()
    return event_id


__all__ = ["Events", "install", "current", "record", "push_completed", "repository_deleted",
           "tags_deleted", "login_failed", "locked_out", "signed_in", "token_refused", "layer_received",
           "repository_created"]
