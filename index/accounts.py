"""Making and ending accounts.

Making one: registration (``POST /v1/users``), the bootstrap admin (``INDEX_ADMIN_USERNAME``) and
the CLI's ``users create`` all call :func:`create_account` (validate, hash the password, store).

Deleting one (:func:`plan_deletion`, then :func:`delete_account`): what happens to its
repositories is said explicitly, and its name stays reserved until an administrator releases it
(:func:`release_name`). Steps, each safe to repeat if one is cut short (run the same deletion
again):

1. the account is deactivated, which starts a new generation: its logins and every token it
   was given stop working at once, so it cannot push while it is being deleted;
2. each repository of its namespace is deleted (records, tags, layers nothing else uses) or
   moved into the namespace of another account;
3. what it and its robots uploaded that other repositories still hold is re-keyed to a name no
   account can have (``RegistryHooks.account_removed``), and its webhooks are retired
   (``DeletionHooks.account_removed``);
4. its grants, team memberships and robots go (``AccessStore.forget_principal``), then the
   account record, and its name is reserved (``Store.delete_user``).

Each removed repository is announced like any other delete (``DeletionHooks``: the audit record
and the ``repo_delete`` webhooks), and releasing a name runs step 3 again, for accounts deleted
before it existed.

No name is ever handed to whoever registers it next: a repository ``davey/app`` is gone or moved
before ``davey`` is removed, ``davey`` cannot be registered until ``release_name``, and a new
``davey`` then finds nothing of the old one: no grants, teams, robots, webhooks, repositories,
image versions or counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from . import names
from .names import RepoName
from .passwords import hash_password
from .services import RegistryHooks
from .store import AlreadyExists, RecordNotFound, Store
from .store.access import AccessStore
from .store.records import RepositoryRecord, UserRecord


def create_account(store: Store, username: Any, password: Any, email: Any, *, active: bool,
                   admin: bool = False, bcrypt_rounds: int) -> UserRecord:
    """Store a new account; the values (as a client sent them) are checked in this order first.

    Raises :class:`~index.names.ValidationError` for an invalid username, password or e-mail and
    :class:`~index.store.errors.AlreadyExists` when the username or the e-mail is taken.
    """
    username = names.username(username)
    password = names.password(password)
    email = names.email(email)
    return store.create_user(username, hash_password(password, bcrypt_rounds), email,
                             active=active, admin=admin)


REPOSITORY_CHOICES = ("delete", "transfer")


class DeletionHooks(Protocol):
    """What the rest of the index does when a deletion removes things (index.events has one)."""

    def repository_removed(self, name: RepoName, removed: RepositoryRecord) -> None:
        """A repository of the account was deleted (audit, ``repo_delete`` webhooks, counts)."""

    def repository_moved(self, old: RepoName, record: RepositoryRecord) -> None:
        """A repository of the account now lives as ``record``."""

    def account_removed(self, username: str) -> None:
        """The account's own records outside the store (its webhooks) must not pass to a later
        account of that name. Safe to call again."""


class AccountError(ValueError):
    """The deletion cannot go ahead as asked; nothing was changed. The message says why."""


@dataclass
class DeletionPlan:
    """What deleting ``username`` will do, checked before anything changes."""

    username: str
    repositories: list[str]
    action: str | None
    to: str | None
    moved: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.repositories:
            return f"delete account {self.username} (it has no repositories) and reserve its name"
        listed = ", ".join(self.repositories)
        if self.action == "delete":
            return f"delete account {self.username} and its {len(self.repositories)} repositories ({listed})"
        return (f"delete account {self.username} and move its {len(self.repositories)} repositories "
                f"({listed}) to {self.to}/")


def namespace_repositories(store: Store, namespace: str) -> list[RepositoryRecord]:
    if not names.NAMESPACE_RE.fullmatch(namespace):
        return []
    return list(store.iter_repositories(namespace))


def plan_deletion(store: Store, username: str, action: str | None, to: str | None) -> DeletionPlan:
    """Check that the deletion can run as asked; AccountError (nothing changed) if not."""
    if store.find_user(username) is None:
        raise AccountError(f"no user {username!r}")
    records = namespace_repositories(store, username)
    repositories = sorted(f"{record['namespace']}/{record['name']}" for record in records)
    if action is not None and action not in REPOSITORY_CHOICES:
        raise AccountError(f"--repositories must be one of {', '.join(REPOSITORY_CHOICES)}, got {action!r}")
    if to is not None and action != "transfer":
        raise AccountError("--to goes with --repositories transfer")
    if repositories and action is None:
        raise AccountError(
            f"{username} has {len(repositories)} repositories ({', '.join(repositories)}); say what happens "
            "to them: --repositories delete, or --repositories transfer --to OTHER_USER")
    if action == "transfer":
        if to is None:
            raise AccountError("--repositories transfer needs --to OTHER_USER")
        if to == username:
            raise AccountError("--to must name another account")
        target = store.find_user(to)
        if target is None:
            raise AccountError(f"no user {to!r} to transfer the repositories to")
        if not target.get("active"):
            raise AccountError(f"user {to} is not active; activate it first or choose another")
        taken = {record["name"] for record in namespace_repositories(store, to)
                 if record.get("moved_from") is None or not record["moved_from"].startswith(f"{username}/")}
        clashes = sorted(record["name"] for record in records if record["name"] in taken)
        if clashes:
            raise AccountError(f"{to} already has repositories named {', '.join(clashes)}; rename or "
                               "delete those first, or choose --repositories delete")
    return DeletionPlan(username, repositories, action if repositories else None, to)


def delete_account(store: Store, registry: RegistryHooks | None, plan: DeletionPlan,
                   hooks: DeletionHooks | None = None) -> DeletionPlan:
    """Carry out a checked plan (see the module's steps); returns it with what was done."""
    username = plan.username
    try:
        user = store.update_user(username, active=False)  # ends its logins and tokens first
    except RecordNotFound:
        raise AccountError(f"no user {username!r}") from None
    # Repositories pushed meanwhile (before step 1 took effect) are handled too.
    for record in namespace_repositories(store, username):
        full = f"{record['namespace']}/{record['name']}"
        if plan.action is None:
            raise AccountError(f"{full} appeared while {username} was being deleted; {username} is "
                               "deactivated; run the deletion again and say what happens to it")
        if plan.action == "transfer":
            assert plan.to is not None
            try:
                moved = store.move_repository(username, record["name"], plan.to, owner=plan.to)
            except AlreadyExists:
                raise AccountError(f"{plan.to} already has a repository named {record['name']}; "
                                   f"{username} is deactivated, its other repositories are where they "
                                   "were; resolve it and run the deletion again") from None
            if registry is not None:
                registry.repository_moved(RepoName(username, record["name"]), moved)
            if hooks is not None:
                hooks.repository_moved(RepoName(username, record["name"]), moved)
            plan.moved.append(full)
        else:
            try:
                removed = store.delete_repository(username, record["name"])
            except RecordNotFound:
                continue  # removed meanwhile
            if hooks is not None:
                hooks.repository_removed(RepoName(username, record["name"]), removed)
            if registry is not None:
                registry.repository_removed(removed)
            plan.deleted.append(full)
    _retire(registry, hooks, username, str(user.get("account_id") or ""))
    # Its grants, team memberships and robots go too (also on the repositories just moved).
    AccessStore(store).forget_principal(username)
    store.delete_user(username)
    return plan


def _retire(registry: RegistryHooks | None, hooks: DeletionHooks | None, username: str, account_id: str) -> None:
    if registry is not None:
        registry.account_removed(username, account_id)
    if hooks is not None:
        hooks.account_removed(username)


def release_name(store: Store, registry: RegistryHooks | None, username: str,
                 hooks: DeletionHooks | None = None) -> None:
    """Let a deleted account's name be registered again (once what the deleted account left is
    retired: again, for accounts deleted before deletions did it)."""
    if store.find_user(username) is not None:
        raise AccountError(f"{username} is an existing account, not a reserved name")
    reserved = next((entry for entry in store.reserved_names() if entry["username"] == username), None)
    if reserved is None:
        raise AccountError(f"the name {username!r} is not reserved")
    _retire(registry, hooks, username, str(reserved.get("account_id") or ""))
    try:
        store.release_name(username)
    except RecordNotFound:
        raise AccountError(f"the name {username!r} is not reserved") from None
