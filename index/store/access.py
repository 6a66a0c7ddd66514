"""Who may see and change what: organizations, their teams, robot accounts, repository grants.

    <data dir>/db/organizations.json   tables ``organizations`` (name -> record) and
                                       ``robots`` ("<namespace>+<short>" -> record)
    <data dir>/db/namespaces/<ns>.json each repository record also holds ``visibility``
                                       (missing: public, so a data dir from before opens with
                                       every repository public) and ``permissions``
                                       (``{"user": {name: role}, "team": {team: role}}``)

Organization names and user names share one space: an organization is created while the
accounts file is locked, and :meth:`Store.create_user` looks here under the same lock.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from . import ACTIVE, Store
from .errors import AlreadyExists
from .errors import RecordNotFound as NotFound
from .files import DataFile
from .records import Grants, OrganizationRecord, RepositoryFacts, RobotRecord, TeamRecord, json_copy
from .records import now as _now
from .tables import Document

ORGANIZATIONS = "organizations"
ROBOTS = "robots"
PUBLIC = "public"
PRIVATE = "private"
VISIBILITIES = (PUBLIC, PRIVATE)
OWNERS_TEAM = "owners"

Result = TypeVar("Result")


class NotEmpty(AlreadyExists):
    """The thing still holds something that must go first (an organization's repositories)."""


def organizations_path(store: Store) -> Path:
    return store.db_dir / "organizations.json"


def find_organization(store: Store, name: str) -> OrganizationRecord | None:
    """The organization record (a copy), or None."""
    found = store.tables.lookup(organizations_path(store), ORGANIZATIONS, name)
    return cast(OrganizationRecord, json_copy(found)) if found is not None else None


def find_robot(store: Store, full_name: str) -> RobotRecord | None:
    found = store.tables.lookup(organizations_path(store), ROBOTS, full_name)
    return cast(RobotRecord, json_copy(found)) if found is not None else None


def repository_facts(store: Store, namespace: str, name: str) -> RepositoryFacts | None:
    """What authorization needs of a repository (state, visibility, grants), without copying
    its image list; None when there is no such record."""
    doc = store.tables.lookup(store.namespace_path(namespace), "repositories", name)
    if doc is None:
        return None
    return {"state": doc.get("state", ACTIVE), "visibility": doc.get("visibility", PUBLIC),
            "permissions": json_copy(doc.get("permissions") or {})}


def holders_of(store: Store, image_id: str) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every active repository that announced ``image_id``."""
    for namespace in store.namespaces():
        datafile = store.tables.existing(store.namespace_path(namespace))
        if datafile is None:
            continue
        records = datafile.read_shared().get("repositories", {})
        for name, doc in records.items():
            if isinstance(doc, dict) and doc.get("state") == ACTIVE and image_id in doc.get("images", {}):
                yield namespace, name


class AccessStore:
    """Changes to organizations, teams, robots and repository grants, on the index's Store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _file(self) -> DataFile:
        return self._store.tables.datafile(organizations_path(self._store))

    # -- organizations -------------------------------------------------------------------------
    def create_organization(self, name: str, email: str, creator: str) -> OrganizationRecord:
        """AlreadyExists("name") when a user, organization or namespace with repositories has it."""
        store = self._store
        record: OrganizationRecord = {"name": name, "email": email, "created": _now(),
                  "teams": {OWNERS_TEAM: {"role": "admin", "description": "owners of the organization",
                                          "members": [creator]}}}
        # The accounts file's lock first: no user of this name can be created meanwhile.
        with store.tables.transaction(store.users_file(), "users") as users:
            if users.contains(doc_id=name) or store.is_reserved(name):  # a deleted account's name too
                raise AlreadyExists("name")
            if any(True for _ in store.iter_repositories(name)):
                raise AlreadyExists("name")
            with store.tables.transaction(self._file(), ORGANIZATIONS) as orgs:
                if orgs.contains(doc_id=name):
                    raise AlreadyExists("name")
                orgs.insert(Document(record, doc_id=name))
        return json_copy(record)

    def delete_organization(self, name: str) -> OrganizationRecord:
        """Remove an organization and its robots; NotEmpty while it holds repositories."""
        store = self._store
        if any(True for _ in store.iter_repositories(name)):
            raise NotEmpty("repositories")
        with store.tables.transaction(self._file(), ORGANIZATIONS) as orgs:
            doc = orgs.get(doc_id=name)
            if doc is None:
                raise NotFound(f"organization {name} not found")
            orgs.remove(doc_ids=[name])
            robots = orgs.storage.read().get(ROBOTS, {})  # same working copy, same write
            for robot in [key for key, value in robots.items() if value.get("namespace") == name]:
                del robots[robot]
        return cast(OrganizationRecord, json_copy(dict(doc)))

    def list_organizations(self) -> list[OrganizationRecord]:
        datafile = self._store.tables.existing(organizations_path(self._store))
        if datafile is None:
            return []
        return [cast(OrganizationRecord, json_copy(doc))
                for doc in datafile.read_shared().get(ORGANIZATIONS, {}).values()]

    def _change_organization(self, name: str, change: Callable[[OrganizationRecord], Result]) -> Result:
        with self._store.tables.transaction(self._file(), ORGANIZATIONS) as orgs:
            doc = orgs.get(doc_id=name)
            if doc is None:
                raise NotFound(f"organization {name} not found")
            record = cast(OrganizationRecord, json_copy(dict(doc)))
            result = change(record)
            orgs.upsert(Document(record, doc_id=name))
        return result

    def set_team(self, org: str, team: str, role: str, description: str | None) -> TeamRecord:
        def change(record: OrganizationRecord) -> TeamRecord:
            current = record["teams"].get(team)
            if current is None:
                current = {"members": [], "description": "", "role": role}
            current["role"] = role
            if description is not None:
                current["description"] = description
            record["teams"][team] = current
            return json_copy(current)
        return self._change_organization(org, change)

    def delete_team(self, org: str, team: str) -> None:
        def change(record: OrganizationRecord) -> None:
            if team not in record["teams"]:
                raise NotFound(f"team {team} not found")
            del record["teams"][team]
        self._change_organization(org, change)
        self._drop_grants(org, "team", team)

    def set_member(self, org: str, team: str, member: str, present: bool) -> bool:
        """Add or remove ``member``; returns whether anything changed."""
        def change(record: OrganizationRecord) -> bool:
            found = record["teams"].get(team)
            if found is None:
                raise NotFound(f"team {team} not found")
            members = found["members"]
            if present and member not in members:
                members.append(member)
                return True
            if not present and member in members:
                members.remove(member)
                return True
            return False
        return self._change_organization(org, change)

    # -- robots --------------------------------------------------------------------------------
    def create_robot(self, namespace: str, short: str, nonce: str,
                     description: str = "") -> tuple[RobotRecord, bool]:
        """(record, created): an existing robot is returned unchanged."""
        full = f"{namespace}+{short}"
        with self._store.tables.transaction(self._file(), ROBOTS) as robots:
            doc = robots.get(doc_id=full)
            if doc is not None:
                return cast(RobotRecord, json_copy(dict(doc))), False
            record: RobotRecord = {"name": full, "namespace": namespace, "short": short, "nonce": nonce,
                      "description": description, "created": _now()}
            robots.insert(Document(record, doc_id=full))
        return json_copy(record), True

    def set_robot_token(self, full: str, nonce: str) -> RobotRecord:
        with self._store.tables.transaction(self._file(), ROBOTS) as robots:
            doc = robots.get(doc_id=full)
            if doc is None:
                raise NotFound(f"robot {full} not found")
            record = {**doc, "nonce": nonce, "regenerated": _now()}
            robots.upsert(Document(record, doc_id=full))
        return cast(RobotRecord, json_copy(record))

    def list_robots(self, namespace: str) -> list[RobotRecord]:
        datafile = self._store.tables.existing(organizations_path(self._store))
        if datafile is None:
            return []
        return [cast(RobotRecord, json_copy(doc)) for doc in datafile.read_shared().get(ROBOTS, {}).values()
                if doc.get("namespace") == namespace]

    def delete_robot(self, full: str) -> None:
        """Remove a robot, its team memberships and its grants (a new robot of the same name
        starts with nothing)."""
        namespace = full.partition("+")[0]
        with self._store.tables.transaction(self._file(), ROBOTS) as robots:
            if not robots.contains(doc_id=full):
                raise NotFound(f"robot {full} not found")
            robots.remove(doc_ids=[full])
            org = robots.storage.read().get(ORGANIZATIONS, {}).get(namespace)
            if org is not None:
                for team in org["teams"].values():
                    if full in team["members"]:
                        team["members"].remove(full)
        self._drop_grants(namespace, "user", full)

    def forget_principal(self, name: str) -> None:
        """Remove a deleted account's grants and team memberships everywhere, so that a new
        account of the same name starts with nothing. (Its own robots are deleted too.)"""
        for robot in self.list_robots(name):
            self.delete_robot(robot["name"])
        for org in self.list_organizations():
            for team, info in org["teams"].items():
                if name in info["members"]:
                    self.set_member(org["name"], team, name, False)
        for namespace in self._store.namespaces():
            self._drop_grants(namespace, "user", name)

    # -- repositories --------------------------------------------------------------------------
    def create_repository(self, namespace: str, name: str, owner: str, description: str,
                          visibility: str, permissions: Grants) -> None:
        """An empty repository (the management API's create); AlreadyExists("repository")."""
        with self._store.tables.transaction(self._store.namespace_file(namespace), "repositories") as repos:
            if repos.contains(doc_id=name):
                raise AlreadyExists("repository")
            # The stored form: images as {id: checksum} (get_repository hands out the wire form).
            record = {"namespace": namespace, "name": name, "description": description,
                      "owner": owner, "state": ACTIVE, "created": _now(), "images": {},
                      "visibility": visibility, "permissions": permissions}
            repos.insert(Document(record, doc_id=name))

    def set_visibility(self, namespace: str, name: str, visibility: str) -> None:
        self._change_repository(namespace, name, lambda doc: doc.__setitem__("visibility", visibility))

    def set_grant(self, namespace: str, name: str, kind: str, who: str, role: str | None) -> bool:
        """Grant ``role`` to a user/robot (``kind`` "user") or team ("team"); None removes it.
        Returns False when there was nothing to remove."""
        def change(doc: dict[str, Any]) -> bool:
            permissions = doc.setdefault("permissions", {})
            grants = permissions.setdefault(kind, {})
            if role is None:
                return grants.pop(who, None) is not None
            grants[who] = role
            return True
        return self._change_repository(namespace, name, change)

    def _change_repository(self, namespace: str, name: str, change: Callable[[dict[str, Any]], Result]) -> Result:
        with self._store.tables.transaction(self._store.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None or doc.get("state") != ACTIVE:
                raise NotFound(f"repository {namespace}/{name} not found")
            record = json_copy(dict(doc))
            result = change(record)
            record["updated"] = _now()
            repos.upsert(Document(record, doc_id=name))
        return result

    def _drop_grants(self, namespace: str, kind: str, who: str) -> None:
        """Remove every grant to ``who`` in ``namespace`` (a deleted team or robot)."""
        if not any(who in (r.get("permissions") or {}).get(kind, {})
                   for r in self._store.iter_repositories(namespace)):
            return
        with self._store.tables.transaction(self._store.namespace_file(namespace), "repositories") as repos:
            for doc in repos.all():
                grants = (doc.get("permissions") or {}).get(kind, {})
                if who in grants:
                    record = json_copy(dict(doc))
                    del record["permissions"][kind][who]
                    repos.upsert(Document(record, doc_id=doc.doc_id))
