"""Admin commands: ``audit`` (query the trail) and ``notifications`` (webhooks and their attempts)."""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from flask.cli import AppGroup

from .. import names
from ..names import LIBRARY, ValidationError
from . import add_notification, current, queue_test, remove_notification
from .audit import EVENTS as AUDIT_EVENTS
from .audit import Query, parse_since
from .notifications import EVENTS, public_view

audit_group = AppGroup("audit", help="Read the audit trail (newest first).")
notifications_group = AppGroup("notifications", help="Manage webhooks: list, add, remove, test, attempts.")


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@audit_group.command("query")
@click.option("--user", help="Records of this account (who acted, or the username a failed login typed).")
@click.option("--repository", help="Records of this repository (namespace/name; library/name for library ones).")
@click.option("--event", type=click.Choice(AUDIT_EVENTS), help="Records of this event only.")
@click.option("--since", help="Not older than this: 2026-01-31, 2026-01-31T12:00:00Z, or an age like 2h or 7d.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
def audit_query(user: str | None, repository: str | None, event: str | None, since: str | None,
                limit: int, as_json: bool) -> None:
    """Show audit records, newest first."""
    try:
        moment = parse_since(since) if since else None
    except ValueError as exc:
        _fail(str(exc))
    if repository is not None and "/" not in repository:
        repository = f"{LIBRARY}/{repository}"
    entries, more = current().audit.query(Query(user, repository, event, moment), limit=limit)
    for entry in entries:
        click.echo(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) if as_json else _line(entry))
    if more:
        click.echo(f"(more records: raise --limit above {limit})", err=True)


def _line(entry: dict[str, Any]) -> str:
    known = {"at", "event", "user", "client", "repository"}
    rest = " ".join(f"{key}={json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"
                    for key, value in entry.items() if key not in known)
    return (f"{entry.get('at', '-')} {entry.get('event', '-'):<18} {entry.get('user') or '-':<20} "
            f"{entry.get('repository') or '-':<30} {entry.get('client') or '-':<16} {rest}").rstrip()


def _scope(text: str) -> tuple[str, str | None]:
    """``namespace`` (the whole namespace) or ``namespace/name`` (one repository)."""
    namespace, _, repository = text.partition("/")
    try:
        if repository:
            name = names.repo_name(namespace, repository)
            return name.namespace, name.repository
        if not names.NAMESPACE_RE.fullmatch(namespace):
            raise ValidationError(f"invalid namespace {namespace!r}")
    except ValidationError as exc:
        _fail(str(exc))
    return namespace, None


@notifications_group.command("list")
@click.argument("scope")
def notifications_list(scope: str) -> None:
    """List the webhooks of SCOPE: a namespace ('alice', an organization) or a repository ('alice/app')."""
    for notification in current().notifications.in_scope(*_scope(scope)):
        last = notification.get("attempts") or []
        state = (f"last: {last[0]['at']} {last[0]['status'] or '-'} {last[0]['error'] or 'delivered'}"
                 if last else "no attempts yet")
        click.echo(f"{notification['uuid']}  {notification['event']:<11} {notification['url']}  {state}")


@notifications_group.command("add")
@click.argument("scope")
@click.option("--event", required=True, type=click.Choice(EVENTS))
@click.option("--url", required=True, help="Where to POST the events.")
@click.option("--title", default="", help="A name people recognise.")
@click.option("--secret-stdin", is_flag=True, help="Read the signing secret from stdin (else one is generated).")
def notifications_add(scope: str, event: str, url: str, title: str, secret_stdin: bool) -> None:
    """Add a webhook for EVENT of SCOPE (a namespace, or namespace/repository)."""
    namespace, repository = _scope(scope)
    secret = sys.stdin.readline().rstrip("\n") if secret_stdin else None
    try:
        created, generated = add_notification({"event": event, "method": "webhook", "title": title,
                                               "config": {"url": url, **({"secret": secret} if secret else {})}},
                                              namespace, repository, None)
    except ValueError as exc:  # invalid, refused target, or too many
        _fail(str(exc))
    click.echo(f"created notification {created['uuid']}")
    if generated:
        click.echo(f"secret (shown once): {generated}")


def _notification_or_fail(uuid: str) -> dict[str, Any]:
    notification = current().notifications.get(uuid)
    if notification is None:
        _fail(f"no notification {uuid!r}")
    return notification


@notifications_group.command("remove")
@click.argument("uuid")
def notifications_remove(uuid: str) -> None:
    """Remove notification UUID (pending deliveries to it are dropped)."""
    remove_notification(_notification_or_fail(uuid), None)
    click.echo(f"removed notification {uuid}")


@notifications_group.command("test")
@click.argument("uuid")
def notifications_test(uuid: str) -> None:
    """Queue a test delivery to notification UUID (a running index sends it)."""
    click.echo(f"queued test delivery {queue_test(_notification_or_fail(uuid), '(cli)')}")


@notifications_group.command("attempts")
@click.argument("uuid")
@click.option("--json", "as_json", is_flag=True)
def notifications_attempts(uuid: str, as_json: bool) -> None:
    """The last delivery attempts of notification UUID, newest first."""
    view = public_view(_notification_or_fail(uuid))
    for attempt in view["attempts"]:
        if as_json:
            click.echo(json.dumps(attempt, separators=(",", ":")))
        else:
            click.echo(f"{attempt['at']} {attempt['event']:<11} #{attempt['attempt']:<3} "
                       f"{attempt['status'] or '-':<4} {attempt['duration_ms']:>8} ms  "
                       f"{attempt['error'] or 'delivered'}  ({attempt['delivery']})")
