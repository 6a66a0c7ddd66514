"""The records the store hands out (their shapes), who acts on them, time stamps, and private copies."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict, TypeVar, cast

from ..names import ImageEntry

if TYPE_CHECKING:  # Python 3.13's typing.TypeIs; only mypy reads it (annotations are strings)
    from typing_extensions import TypeIs


class UserRecord(TypedDict):
    """An account (``db/users.json``, keyed by username)."""

    username: str
    password_hash: str
    emails: list[str]  # the first is the one given at registration
    active: bool
    admin: bool
    created: str
    confirmed: NotRequired[str]  # when the activation link was first followed
    account_id: NotRequired[str]  # random, fixed at creation (accounts from before have none)
    generation: NotRequired[int]  # goes up when the account's tokens must stop working


# Grants on one repository: "user" (accounts and robots) or "team" -> name -> role.
Grants = dict[str, dict[str, str]]


class RepositoryRecord(TypedDict):
    """A repository (``db/namespaces/<namespace>.json``), its image list in the wire form."""

    namespace: str
    name: str
    description: str
    owner: str
    state: str  # ACTIVE or DELETING
    created: str
    updated: NotRequired[str]
    images: list[ImageEntry]
    tags: NotRequired[dict[str, str]]  # the built-in registry's tags: name -> image id
    delete_id: NotRequired[str]  # while a delete is under way: what its delete token names
    visibility: NotRequired[str]  # access control (store.access)
    moved_from: NotRequired[str]  # the namespace it came from when its owner's account was deleted
    permissions: NotRequired[Grants]  # access control (store.access)


class RepositoryFacts(TypedDict):
    """What authorization needs of a repository (``store.access.repository_facts``)."""

    state: str
    visibility: str
    permissions: Grants


class TeamRecord(TypedDict):
    """A team of an organization."""

    role: str  # member, creator or admin (index.permissions.TEAM_ROLES)
    description: str
    members: list[str]  # account and robot names


class OrganizationRecord(TypedDict):
    """An organization (``db/organizations.json``, table ``organizations``, keyed by name)."""

    name: str
    email: str
    created: str
    teams: dict[str, TeamRecord]


class RobotRecord(TypedDict):
    """A robot account (``db/organizations.json``, table ``robots``, keyed by its full name)."""

    name: str  # <namespace>+<short>
    namespace: str
    short: str
    nonce: str  # its token is derived from this (index.principals); never the token itself
    description: str
    created: str
    regenerated: NotRequired[str]


class RobotPrincipal(TypedDict):
    """A robot as the request side handles a caller: the fields of an account that
    ``auth`` and ``permissions`` read, ``robot`` and the namespace it belongs to."""

    username: str  # its full name
    robot: Literal[True]
    namespace: str
    active: bool
    admin: bool
    emails: list[str]
    generation: str  # the start of its nonce: regenerating the token ends its index tokens


# Who makes a request: an account or a robot (is_robot tells them apart).
Principal = UserRecord | RobotPrincipal


def is_robot(user: Principal | None) -> TypeIs[RobotPrincipal]:
    return bool(user and user.get("robot"))


def now() -> str:
    """The current UTC time as stored in records (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


JsonValue = TypeVar("JsonValue")


def json_copy(value: JsonValue) -> JsonValue:
    """A deep copy of parsed JSON (dicts, lists, scalars): what ``copy.deepcopy`` does for it,
    several times faster, since records are copied on every read that hands one out."""
    if isinstance(value, dict):
        return cast(JsonValue, {key: json_copy(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(JsonValue, [json_copy(item) for item in value])
    return value
