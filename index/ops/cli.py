"""The admin commands: ``docker-index users ...`` / ``repositories ...`` / ``rotate-key``.

Commands work on the data dir of the settings (``--data-dir`` / ``INDEX_DATA_DIR``), safely
beside a running server: every change goes through the store's locks. Passwords are read from a prompt or from
stdin, never from the command line (argv is visible to every user of the machine).
"""
from __future__ import annotations

import sys
from datetime import UTC
from typing import NoReturn

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .. import accounts, events, names
from ..accounts import create_account
from ..names import LIBRARY, RepoName, ValidationError
from ..passwords import hash_password
from ..services import services
from ..store import AlreadyExists, RecordNotFound
from ..store.records import RepositoryRecord, UserRecord
from .repository_summary import RepositorySummary, human_size, summarize

users = AppGroup("users", help="Manage accounts: create, list, show, activate, promote, delete, release ...")
repositories = AppGroup("repositories", help="Manage repositories: list, show, describe, delete.")


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return names.password(password)
    except ValidationError as exc:
        _fail(str(exc))


def _user_or_fail(username: str) -> UserRecord:
    store = services().store
    user = store.find_user(username)
    if user is None:
        if store.is_reserved(username):
            _fail(f"no user {username!r}: the name of a deleted account, reserved "
                  f"(users release {username} lets it be registered again)")
        _fail(f"no user {username!r}")
    return user


def _describe_user(user: UserRecord) -> str:
    flags = ["active" if user.get("active") else "inactive"]
    if user.get("admin"):
        flags.append("admin")
    return f"{user['username']:<30} {','.join(flags):<16} {', '.join(user.get('emails', []))}"


_password_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.")


@users.command("create")
@click.argument("username")
@click.option("--email", required=True, help="The account's e-mail address.")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--inactive", is_flag=True, help="Create it inactive (activate it later).")
@_password_option
def users_create(username: str, email: str, admin: bool, inactive: bool, password_stdin: bool) -> None:
    """Create account USERNAME; the password is prompted for (or read from stdin)."""
    try:
        names.username(username)
        names.email(email)
    except ValidationError as exc:
        _fail(str(exc))
    password = _read_password(password_stdin)
    try:
        create_account(services().store, username, password, email, active=not inactive, admin=admin,
                       bcrypt_rounds=current_app.config["BCRYPT_ROUNDS"])
    except AlreadyExists as exc:
        _fail(f"cannot create {username}: {exc.field} already exists")
    events.record("register", account=username, email=email, admin=admin, active=not inactive)
    click.echo(f"created {'admin ' if admin else ''}user {username}"
               f"{' (inactive)' if inactive else ''}")


@users.command("list")
def users_list() -> None:
    """List every account with its state and e-mail addresses."""
    for user in sorted(services().store.list_users(), key=lambda user: user["username"]):
        click.echo(_describe_user(user))


@users.command("show")
@click.argument("username")
def users_show(username: str) -> None:
    """Show one account (never its password hash)."""
    user = _user_or_fail(username)
    owned = sum(1 for _ in services().store.iter_repositories(username)) if \
        names.NAMESPACE_RE.fullmatch(username) else 0
    click.echo(f"username:     {user['username']}")
    click.echo(f"active:       {'yes' if user.get('active') else 'no'}")
    click.echo(f"admin:        {'yes' if user.get('admin') else 'no'}")
    click.echo(f"emails:       {', '.join(user.get('emails', []))}")
    click.echo(f"created:      {user.get('created', '-')}")
    click.echo(f"confirmed:    {user.get('confirmed', '-')}")
    click.echo(f"repositories: {owned}")


def _set_flag(username: str, message: str, *, active: bool | None = None, admin: bool | None = None) -> None:
    try:
        services().store.update_user(username, active=active, admin=admin)
    except RecordNotFound:
        _fail(f"no user {username!r}")
    kind = "role_change" if admin is not None else "activate" if active else "account_change"
    if admin is not None:
        events.record(kind, account=username, admin=admin)
    else:
        events.record(kind, account=username, active=active)
    click.echo(message)


@users.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    """Activate USERNAME (approve a registration)."""
    _set_flag(username, f"activated {username}", active=True)


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Deactivate USERNAME: every call with its credentials or tokens is refused."""
    _set_flag(username, f"deactivated {username}", active=False)


@users.command("promote")
@click.argument("username")
def users_promote(username: str) -> None:
    """Make USERNAME an administrator."""
    _set_flag(username, f"{username} is now an administrator", admin=True)


@users.command("demote")
@click.argument("username")
def users_demote(username: str) -> None:
    """Take administrator rights from USERNAME."""
    _set_flag(username, f"{username} is no longer an administrator", admin=False)


@users.command("set-password")
@click.argument("username")
@_password_option
def users_set_password(username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (prompted for, or read from stdin)."""
    _user_or_fail(username)
    password = _read_password(password_stdin)
    found = services()
    try:
        found.store.update_user(username, password_hash=hash_password(password, current_app.config["BCRYPT_ROUNDS"]))
    except RecordNotFound:
        _fail(f"no user {username!r}")
    events.record("account_change", account=username, changed=["password"])
    click.echo(f"password of {username} changed")


@users.command("delete")
@click.argument("username")
@click.option("--repositories", "repositories_action", type=click.Choice(accounts.REPOSITORY_CHOICES),
              help="What happens to the repositories of the account's namespace: 'delete' them, or "
                   "'transfer' them to the account named by --to. Required when it has any.")
@click.option("--to", "to", metavar="OTHER_USER", help="With --repositories transfer: the new owner.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def users_delete(username: str, repositories_action: str | None, to: str | None, yes: bool) -> None:
    """Delete account USERNAME: its tokens stop working, its repositories are deleted or
    transferred (as you say), and the name stays reserved until 'users release'."""
    found = services()
    try:
        plan = accounts.plan_deletion(found.store, username, repositories_action, to)
    except accounts.AccountError as exc:
        _fail(str(exc))
    if not yes:
        click.confirm(f"{plan.describe()}?", abort=True)
    try:
        accounts.delete_account(found.store, found.registry, plan, events.AccountRemoval())
    except accounts.AccountError as exc:
        _fail(str(exc))
    events.record("account_delete", account=username, repositories_deleted=list(plan.deleted),
                  repositories_moved=list(plan.moved))
    for name in plan.deleted:
        click.echo(f"deleted repository {name}")
    for name in plan.moved:
        click.echo(f"moved repository {name} to {plan.to}/{name.partition('/')[2]}")
    click.echo(f"deleted user {username}; the name stays reserved (release it with: users release {username})")


@users.command("release")
@click.argument("username")
def users_release(username: str) -> None:
    """Let the name of deleted account USERNAME be registered again."""
    try:
        found = services()
        accounts.release_name(found.store, found.registry, username, events.AccountRemoval())
    except accounts.AccountError as exc:
        _fail(str(exc))
    click.echo(f"released {username}: it can be registered again")


@users.command("reserved")
def users_reserved() -> None:
    """List the names of deleted accounts that nobody may register yet."""
    for entry in sorted(services().store.reserved_names(), key=lambda entry: entry["username"]):
        click.echo(f"{entry['username']:<30} deleted {entry.get('deleted', '-')}")


def _repo_name(text: str) -> RepoName:
    namespace, _, repository = text.rpartition("/")
    try:
        return names.repo_name(namespace or LIBRARY, repository)
    except ValidationError as exc:
        _fail(str(exc))


def _repository_or_fail(name: RepoName) -> RepositoryRecord:
    record = services().store.get_repository(name.namespace, name.repository)
    if record is None:
        _fail(f"no repository {name.display!r}")
    return record


def _summary(record: RepositoryRecord) -> RepositorySummary:
    return summarize(record, services().registry)


@repositories.command("list")
@click.option("--namespace", help="Only this namespace (a user name, or 'library').")
def repositories_list(namespace: str | None) -> None:
    """List repositories: name, state, images, stored size, tags, last push."""
    if namespace is not None and not names.NAMESPACE_RE.fullmatch(namespace):
        _fail(f"invalid namespace {namespace!r}")
    click.echo(f"{'NAME':<40} {'STATE':<22} {'IMAGES':>6} {'SIZE':>9}  {'LAST PUSH':<20}  TAGS")
    for record in services().store.iter_repositories(namespace):
        summary = _summary(record)
        state = record["state"] + (f" ({summary.incomplete} incomplete)" if summary.incomplete else "")
        click.echo(f"{summary.name.display:<40} {state:<22} {len(summary.images):>6} "
                   f"{human_size(summary.stored_bytes):>9}  {summary.last_push or '-':<20}  "
                   f"{', '.join(sorted(summary.tags)) or '-'}")


@repositories.command("show")
@click.argument("name")
def repositories_show(name: str) -> None:
    """Show repository NAME ('alice/app', or 'busybox' for library/busybox) with its images."""
    summary = _summary(_repository_or_fail(_repo_name(name)))
    record = summary.record
    click.echo(f"name:        {summary.name.display}")
    click.echo(f"owner:       {record.get('owner', '-')}")
    click.echo(f"state:       {record['state']}")
    click.echo(f"description: {record.get('description') or ''}")
    click.echo(f"created:     {record.get('created', '-')}")
    click.echo(f"updated:     {record.get('updated', '-')}")
    click.echo(f"last push:   {summary.last_push or '-'}")
    click.echo(f"stored size: {human_size(summary.stored_bytes)} ({summary.stored_bytes} bytes)")
    click.echo(f"tags:        {len(summary.tags)}")
    for tag, image_id in sorted(summary.tags.items()):
        click.echo(f"  {tag:<24} {image_id}")
    click.echo(f"images:      {len(summary.images)}"
               + (f" ({summary.incomplete} incomplete)" if summary.incomplete else ""))
    for image in summary.images:
        size = human_size(image.size) if image.size is not None else "-"
        marker = "" if image.state == "complete" else f"  [{image.state.upper()}]"
        click.echo(f"  {image.id} {size:>9}{marker}")


@repositories.command("describe")
@click.argument("name")
@click.argument("description")
def repositories_describe(name: str, description: str) -> None:
    """Set the DESCRIPTION of repository NAME (what 'docker search' shows)."""
    repo = _repo_name(name)
    if len(description) > 1000 or any(ord(c) < 32 for c in description):
        _fail("description must be one line of at most 1000 characters")
    try:
        services().store.set_description(repo.namespace, repo.repository, description)
    except RecordNotFound:
        _fail(f"no repository {repo.display!r}")
    click.echo(f"description of {repo.display} set")


@repositories.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def repositories_delete(name: str, yes: bool) -> None:
    """Delete repository NAME: its records, tags, and layers no other repository uses."""
    repo = _repo_name(name)
    _repository_or_fail(repo)
    if not yes:
        click.confirm(f"delete repository {repo.display}?", abort=True)
    found = services()
    try:
        removed = found.store.delete_repository(repo.namespace, repo.repository)
    except RecordNotFound:
        _fail(f"no repository {repo.display!r}")
    events.repository_deleted(repo, None, removed)
    if found.registry is not None:
        found.registry.repository_removed(removed)
    click.echo(f"deleted repository {repo.display}")


@click.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def rotate_key_command(yes: bool) -> None:
    """Replace the generated signing key; the old one keeps verifying until its tokens expire.

    Restart the server afterwards: it signs with the key it read at start.
    """
    from datetime import datetime

    from ..secrets import rotate_key
    config = current_app.config
    if config["SECRET_KEY"]:
        _fail("the key comes from INDEX_SECRET_KEY: put a new one there and the old one in "
              "INDEX_SECRET_KEY_FALLBACKS until INDEX_TOKEN_TTL and INDEX_ACTIVATION_TTL have passed")
    if not yes:
        click.confirm("replace the signing key (tokens keep working until they expire)?", abort=True)
    keep = max(config["TOKEN_TTL"], config["ACTIVATION_TTL"])
    try:
        until = rotate_key(config["DATA_DIR"], keep)
    except (OSError, ValueError) as exc:
        _fail(f"cannot rotate the key: {exc}")
    moment = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    click.echo(f"new signing key written to {config['DATA_DIR'] / 'secret_key'}; the old key "
               f"verifies tokens and activation links until {moment}. Restart the server to sign "
               f"with the new key.")
