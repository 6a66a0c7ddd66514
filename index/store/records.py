"""The records the store hands out (their shapes), time stamps, and private copies."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, TypeVar, cast

from ..names import ImageEntry


class UserRecord(TypedDict):
    """An account (``db/users.json``, keyed by username)."""

    username: str
    password_hash: str
    emails: list[str]  # the first is the one given at registration
    active: bool
    admin: bool
    created: str
    confirmed: NotRequired[str]  # when the activation link was first followed


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


def now() -> str:
    """The current UTC time as stored in records (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def caller(user: UserRecord) -> dict[str, Any]:
    """An account as the request side handles a caller (``auth``, ``permissions``), where robot
    principals (plain dicts) travel too."""
    return cast("dict[str, Any]", user)


JsonValue = TypeVar("JsonValue")


def json_copy(value: JsonValue) -> JsonValue:
    """A deep copy of parsed JSON (dicts, lists, scalars): what ``copy.deepcopy`` does for it,
    several times faster, since records are copied on every read that hands one out."""
    if isinstance(value, dict):
        return cast(JsonValue, {key: json_copy(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(JsonValue, [json_copy(item) for item in value])
    return value
