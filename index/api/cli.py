"""Admin CLI for access control: the same operations as ``/api/v1``, acting as the administrator.

    organizations create|list|show|delete      teams set|delete|members|add|remove
    robots create|list|show|regenerate|delete  permissions visibility|list|grant|revoke
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import click
from flask.cli import AppGroup

from .. import names
from ..errors import ApiError
from ..names import LIBRARY, RepoName, ValidationError
from ..services import services
from ..store.access import find_organization
from . import operations

organizations = AppGroup("organizations", help="Manage organizations: create, list, show, delete.")
teams = AppGroup("teams", help="Manage an organization's teams and their members.")
robots = AppGroup("robots", help="Manage robot accounts (<namespace>+<name>, token as password).")
permissions_group = AppGroup("permissions", help="Repository visibility and per-repository grants.")


COMMANDS = (organizations, teams, robots, permissions_group)


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _run(action: Callable[[], Any]) -> Any:
    """Run an operation; its 4xx becomes a one-line error and exit status 1."""
    try:
        return action()
    except (ApiError, ValidationError) as exc:
        _fail(exc.message if isinstance(exc, ApiError) else str(exc))


def _repo(text: str) -> RepoName:
    namespace, slash, repository = text.partition("/")
    try:
        return names.repo_name(namespace, repository) if slash else names.repo_name(LIBRARY, text)
    except ValidationError as exc:
        _fail(str(exc))


def _user(username: str) -> None:
    if services().store.find_user(username) is None:
        _fail(f"no user {username!r}")


# -- organizations --------------------------------------------------------------------------
@organizations.command("create")
@click.argument("name")
@click.option("--email", required=True, help="The organization's e-mail address.")
@click.option("--owner", required=True, help="The account that lands in the team 'owners'.")
def organizations_create(name: str, email: str, owner: str) -> None:
    """Create organization NAME with OWNER in its team 'owners'."""
    _user(owner)
    _run(lambda: operations.create_organization(name, email, owner))
    click.echo(f"created organization {name} (owner {owner})")


@organizations.command("list")
def organizations_list() -> None:
    """List organizations with their number of teams."""
    for org in sorted(operations.access_store().list_organizations(), key=lambda o: o["name"]):
        click.echo(f"{org['name']:<30} {len(org['teams'])} team(s)  {org['email']}")


@organizations.command("show")
@click.argument("name")
def organizations_show(name: str) -> None:
    """Show an organization's teams, roles and members."""
    org = _run(lambda: operations.organization_or_404(name))
    click.echo(f"organization: {org['name']} <{org['email']}>")
    for team, info in sorted(org["teams"].items()):
        click.echo(f"team {team:<20} {info['role']:<8} {', '.join(info['members']) or '-'}")


@organizations.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def organizations_delete(name: str, yes: bool) -> None:
    """Delete an organization (it must hold no repositories) and its robots."""
    if not yes:
        click.confirm(f"Delete organization {name} and its robots?", abort=True)
    _run(lambda: operations.delete_organization(name))
    click.echo(f"deleted organization {name}")


# -- teams ----------------------------------------------------------------------------------
@teams.command("set")
@click.argument("org")
@click.argument("team")
@click.option("--role", required=True, type=click.Choice(["member", "creator", "admin"]))
@click.option("--description", default=None)
def teams_set(org: str, team: str, role: str, description: str | None) -> None:
    """Create team TEAM of ORG, or change its role."""
    _run(lambda: operations.set_team(org, team, role, description))
    click.echo(f"team {org}/{team}: {role}")


@teams.command("delete")
@click.argument("org")
@click.argument("team")
def teams_delete(org: str, team: str) -> None:
    """Delete a team (and its grants)."""
    _run(lambda: operations.delete_team(org, team))
    click.echo(f"deleted team {org}/{team}")


@teams.command("members")
@click.argument("org")
@click.argument("team")
def teams_members(org: str, team: str) -> None:
    """List a team's members."""
    for member in _run(lambda: operations.team_members(org, team)):
        click.echo(f"{member['name']:<40} {member['kind']}")


@teams.command("add")
@click.argument("org")
@click.argument("team")
@click.argument("member")
def teams_add(org: str, team: str, member: str) -> None:
    """Add a user or robot (ORG+name) to a team."""
    _run(lambda: operations.set_member(org, team, member, True))
    click.echo(f"{member} is in team {org}/{team}")


@teams.command("remove")
@click.argument("org")
@click.argument("team")
@click.argument("member")
def teams_remove(org: str, team: str, member: str) -> None:
    """Remove a member from a team."""
    _run(lambda: operations.set_member(org, team, member, False))
    click.echo(f"{member} left team {org}/{team}")


# -- robots ---------------------------------------------------------------------------------
def _robot(full: str) -> tuple[str, str]:
    namespace, plus, short = full.partition("+")
    if not plus:
        _fail(f"a robot is named <namespace>+<name>, got {full!r}")
    return namespace, short


@robots.command("create")
@click.argument("name")
def robots_create(name: str) -> None:
    """Create robot NAME (<namespace>+<short>) and print its token."""
    namespace, short = _robot(name)
    if find_organization(services().store, namespace) is None and \
            services().store.find_user(namespace) is None:
        _fail(f"no user or organization {namespace!r}")
    view, created = _run(lambda: operations.create_robot(namespace, short))
    click.echo(f"{'created' if created else 'exists:'} {view['name']}\ntoken: {view['token']}")


@robots.command("list")
@click.argument("namespace")
def robots_list(namespace: str) -> None:
    """List the robots of a user or organization."""
    for robot in sorted(operations.access_store().list_robots(namespace), key=lambda r: r["name"]):
        click.echo(robot["name"])


@robots.command("show")
@click.argument("name")
def robots_show(name: str) -> None:
    """Print a robot's current token."""
    record = _run(lambda: operations.robot_or_404(*_robot(name)))
    click.echo(operations.robot_view(record)["token"])


@robots.command("regenerate")
@click.argument("name")
def robots_regenerate(name: str) -> None:
    """Give a robot a new token; the old one stops working at once."""
    view = _run(lambda: operations.regenerate_robot(*_robot(name)))
    click.echo(f"token: {view['token']}")


@robots.command("delete")
@click.argument("name")
def robots_delete(name: str) -> None:
    """Delete a robot with its team memberships and grants."""
    _run(lambda: operations.delete_robot(*_robot(name)))
    click.echo(f"deleted robot {name}")


# -- permissions ----------------------------------------------------------------------------
@permissions_group.command("visibility")
@click.argument("repository")
@click.argument("visibility", type=click.Choice(["public", "private"]))
def permissions_visibility(repository: str, visibility: str) -> None:
    """Make REPOSITORY (alice/app, or busybox for library/busybox) public or private."""
    name = _repo(repository)
    _run(lambda: operations.set_visibility(name, visibility))
    click.echo(f"{name.display} is {visibility}")


@permissions_group.command("list")
@click.argument("repository")
def permissions_list(repository: str) -> None:
    """Show a repository's visibility and grants."""
    name = _repo(repository)
    users = _run(lambda: operations.grants(name, "user"))
    team_grants = _run(lambda: operations.grants(name, "team"))
    record = services().store.get_repository(name.namespace, name.repository)
    click.echo(f"{name.display}: {record.get('visibility', 'public') if record else 'public'}")
    for who, role in sorted(users.items()):
        click.echo(f"{'robot' if '+' in who else 'user':<6} {who:<40} {role}")
    for team, role in sorted(team_grants.items()):
        click.echo(f"{'team':<6} {team:<40} {role}")


@permissions_group.command("grant")
@click.argument("repository")
@click.argument("who")
@click.argument("role", type=click.Choice(["read", "write", "admin"]))
@click.option("--team", is_flag=True, help="WHO is a team of the repository's organization.")
def permissions_grant(repository: str, who: str, role: str, team: bool) -> None:
    """Grant ROLE on REPOSITORY to a user, robot or (--team) team."""
    name = _repo(repository)
    _run(lambda: operations.grant_team(name, who, role) if team else operations.grant_user(name, who, role))
    click.echo(f"{who}: {role} on {name.display}")


@permissions_group.command("revoke")
@click.argument("repository")
@click.argument("who")
@click.option("--team", is_flag=True, help="WHO is a team.")
def permissions_revoke(repository: str, who: str, team: bool) -> None:
    """Take a user's, robot's or team's grant on REPOSITORY away."""
    name = _repo(repository)
    _run(lambda: operations.grant_team(name, who, None) if team else operations.grant_user(name, who, None))
    click.echo(f"{who}: no grant on {name.display}")
