"""Which version of a client-chosen image id a request sees (issue 11: no image poisoning).

docker v1 image ids are global and chosen by the client, so an id alone proves nothing about
its bytes. Every image request is answered from a **scope**:

* a Token for repository R: the versions uploaded by an account that may write R *now*
  (``permissions.can_write``). A write under that token makes the token holder's own version,
  held by R. Pulls through R's token get what R's writers uploaded, never another account's.
* Basic credentials, reading: the versions held by a repository the reader may read
  (``permissions.can_read``); of several, the oldest.
* Basic credentials, writing: the versions uploaded by an account that may write one of the
  reader's repositories that announced the id; the upload is held by those repositories.

Of several versions that satisfy a scope, the oldest complete one is used (what children built
on it were checked against).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import permissions, principals
from ..names import RepoName
from ..services import services
from ..store import ACTIVE
from ..store.records import Principal

Version = dict[str, Any]


@dataclass
class Scope:
    satisfies: Callable[[Version], bool]
    refs: list[str] = field(default_factory=list)  # repositories ("ns/repo") a write or claim is for
    uploader: str | None = None                    # whose version a write makes; None: read only

    @property
    def claims(self) -> bool:
        """Whether a version found for this scope becomes held by its repositories (a writer's
        ``GET json`` that makes docker skip an upload must keep the version alive for it)."""
        return self.uploader is not None


def uploader_name(token_subject: str) -> str:
    """The name a version records as ``uploaded_by``: a token's subject without what changes
    with every token generation (``name#generation``), so a new token of the same account or
    robot still finds its uploads."""
    return token_subject.partition("#")[0]


def _principal(name: str) -> Principal | None:
    """The account an ``uploaded_by`` names, as the permissions module takes it (the one place
    to look up other kinds of principals, such as robots, when they exist)."""
    return principals.find(name)


def _account_writes(names: list[RepoName]) -> Callable[[str], bool]:
    """Whether an account (by name) may write any of ``names`` now; asked once per account."""
    answers: dict[str, bool] = {}

    def writes(username: str) -> bool:
        if username not in answers:
            user = _principal(username)
            answers[username] = user is not None and any(permissions.can_write(user, name) for name in names)
        return answers[username]
    return writes


def for_repository(name: RepoName, writer: str | None) -> Scope:
    """A Token for ``name``: versions its writers uploaded; ``writer`` makes new ones."""
    writes = _account_writes([name])
    uploader = uploader_name(writer) if writer is not None else None
    return Scope(lambda version: writes(version["uploaded_by"]), [name.full], uploader)


def for_writer(username: str, names: list[RepoName]) -> Scope:
    writes = _account_writes(names)
    return Scope(lambda version: writes(version["uploaded_by"]), [name.full for name in names], username)


def for_reader(user: Principal | None) -> Scope:
    """Reads without a Token (Basic or anonymous): a version some repository the reader may read
    holds (active ones only)."""
    store = services().store
    answers: dict[str, bool] = {}

    def readable(full: str) -> bool:
        if full not in answers:
            namespace, _, repo = full.partition("/")
            record = store.get_repository(namespace, repo)
            answers[full] = (record is not None and record["state"] == ACTIVE
                             and permissions.can_read(user, RepoName(namespace, repo)))
        return answers[full]
    return Scope(lambda version: any(readable(full) for full in version["refs"]))
