"""Webhook notifications: which URL hears which event of which repository or namespace.

Kept in ``<data dir>/db/notifications.json`` (one durable JSON document, written whole under its
lock, like every data file), keyed by uuid. Each record also holds its last delivery attempts.
"""
from __future__ import annotations

import contextlib
import json
import secrets
import uuid as uuid_module
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store import Store
from ..store.files import DataFile
from .audit import now_iso
from .targets import parse_url

FILE_NAME = "notifications.json"
TABLE = "notifications"
EVENTS = ("repo_push", "repo_delete", "tag_delete")
METHODS = ("webhook",)
MAX_TITLE_CHARS = 200
MAX_SECRET_CHARS = 256
MIN_SECRET_CHARS = 16
MAX_PER_SCOPE = 50
KEEP_ATTEMPTS = 10
# A retired webhook's namespace gets this suffix (no namespace holds it) and this field.
RETIRED = "~retired"
RETIRED_FIELD = "retired"


class NotificationError(ValueError):
    """A request the notification API answers 400 (or 409 for too many)."""


def validate(data: object) -> dict[str, Any]:
    """The fields of a new notification from an API body (Quay's shape); raises NotificationError."""
    if not isinstance(data, dict):
        raise NotificationError("body must be a JSON object with event, method and config")
    unknown = set(data) - {"event", "method", "config", "title", "eventConfig"}
    if unknown:
        raise NotificationError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    event = data.get("event")
    if event not in EVENTS:
        raise NotificationError(f"event must be one of {', '.join(EVENTS)}")
    method = data.get("method", "webhook")
    if method not in METHODS:
        raise NotificationError("method must be webhook")
    config = data.get("config")
    if not isinstance(config, dict):
        raise NotificationError("config must be a JSON object with url (and optionally secret)")
    if set(config) - {"url", "secret"}:
        raise NotificationError("config takes url and secret only")
    try:
        parse_url(config.get("url"))
    except ValueError as exc:
        raise NotificationError(str(exc)) from None
    secret = config.get("secret")
    if secret is not None and (not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS
                               or not secret.isprintable()):
        raise NotificationError(f"config.secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} printable characters")
    title = data.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS or not title.isprintable():
        raise NotificationError(f"title must be a string of at most {MAX_TITLE_CHARS} printable characters")
    return {"event": event, "method": method, "url": config["url"], "secret": secret, "title": title}


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the API and CLI show (Quay's fields, then ours): never the secret."""
    attempts = list(record.get("attempts", []))
    failures = 0
    for attempt in attempts:  # newest first: the failures since the last delivery
        if attempt.get("error") is None:
            break
        failures += 1
    return {
        "uuid": record["uuid"], "event": record["event"], "method": record["method"],
        "title": record["title"], "config": {"url": record["url"]}, "event_config": {},
        "number_of_failures": failures,
        "namespace": record["namespace"], "repository": record["repository"],
        "created": record["created"], "created_by": record["created_by"],
        "attempts": attempts,
    }


class Notifications:
    """The notifications file, read and changed under its lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path: Path = store.db_dir / FILE_NAME
        self._file = DataFile(self.path)

    def _all(self) -> dict[str, dict[str, Any]]:
        table = self._file.read_shared().get(TABLE, {})
        return table if isinstance(table, dict) else {}

    def get(self, notification_id: str) -> dict[str, Any] | None:
        found = self._all().get(notification_id)
        return dict(found) if isinstance(found, dict) else None

    def in_scope(self, namespace: str, repository: str | None) -> list[dict[str, Any]]:
        """The notifications of a repository (``ns/name``) or of a whole namespace (None)."""
        return sorted((dict(record) for record in self._all().values()
                       if record["namespace"] == namespace and record["repository"] == repository),
                      key=lambda record: record["created"])

    def listening(self, event: str, namespace: str, repository: str) -> list[dict[str, Any]]:
        """Notifications for ``event`` on this repository or on its whole namespace."""
        return [dict(record) for record in self._all().values()
                if record["event"] == event and record["namespace"] == namespace
                and record["repository"] in (None, repository)]

    def create(self, fields: dict[str, Any], namespace: str, repository: str | None,
               created_by: str) -> tuple[dict[str, Any], str | None]:
        """Add one; returns it and the generated secret (None when the caller gave one)."""
        generated = None if fields["secret"] else secrets.token_urlsafe(32)
        record = {"uuid": str(uuid_module.uuid4()), "event": fields["event"], "method": fields["method"],
                  "title": fields["title"], "url": fields["url"], "secret": fields["secret"] or generated,
                  "namespace": namespace, "repository": repository, "created": now_iso(),
                  "created_by": created_by, "attempts": []}
        with self._changing() as table:
            if sum(1 for other in table.values() if other["namespace"] == namespace
                   and other["repository"] == repository) >= MAX_PER_SCOPE:
                raise NotificationError(f"at most {MAX_PER_SCOPE} notifications per repository or namespace")
            table[record["uuid"]] = record
        return record, generated

    def delete(self, notification_id: str) -> bool:
        with self._changing() as table:
            return table.pop(notification_id, None) is not None

    def retire_namespace(self, namespace: str) -> list[str]:
        """The webhooks of a deleted account's namespace (its own and its repositories') leave
        the namespace: they no longer match ``in_scope`` or ``listening``, so a later account
        of that name neither sees nor inherits them, but deliveries already queued still find
        them by id. The dispatcher removes each once nothing is queued for it (``RETIRED``).
        Returns their ids."""
        with self._changing() as table:
            retired = [uuid for uuid, record in table.items() if record["namespace"] == namespace]
            for uuid in retired:
                table[uuid] = {**table[uuid], "namespace": f"{namespace}{RETIRED}", RETIRED_FIELD: True}
        return retired

    def note_attempt(self, notification_id: str, attempt: dict[str, Any]) -> None:
        with self._changing() as table:
            record = table.get(notification_id)
            if record is not None:
                record["attempts"] = [attempt, *record.get("attempts", [])][:KEEP_ATTEMPTS]

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """A read-modify-write of the whole file under the backup gate and the file's lock;
        written only when the table changed and the block raised nothing."""
        with self.store.writing(), self._file.locked():
            table = self._file.read_private().get(TABLE)
            table = table if isinstance(table, dict) else {}
            before = json.dumps(table, sort_keys=True)
            yield table
            if json.dumps(table, sort_keys=True) != before:
                self._file.write({TABLE: table})

