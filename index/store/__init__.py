"""The index's data, behind methods that speak the domain.

TinyDB is the query layer (:mod:`index.store.tables`); :mod:`index.store.files` makes it durable
and safe across threads and processes. Data is split so that a write costs what the touched part
holds:

    <data dir>/db/users.json                 every account, keyed by username (table "users"), and
                                             the names of deleted accounts, reserved (table "reserved")
    <data dir>/db/namespaces/<namespace>.json that namespace's repositories and their image lists
    <data dir>/db/namespaces/<namespace>.json.journal
                                             merge patches not yet folded into that file: new
                                             image ids of active repositories (see files.py)
    <data dir>/db/activity/<00..0f>.json      pull/push counts (written by index.activity)

Methods return plain dicts (copies) or raise the errors of :mod:`index.store.errors`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from ..names import LIBRARY, ImageEntry
from .changes import CHANGES_NAME, ChangeLog
from .errors import AlreadyExists, CorruptDataFile, LimitReached, RecordNotFound, StorageFailure, StoreError
from .files import (
    JOURNAL_SUFFIX,
    LOCK_TIMEOUT_SECONDS,
    DataFile,
    InUseMark,
    check_framing,
    ensure_dir,
    journal_path,
    remove_stale_temp_files,
    stat_or_none,
    walk_files,
)
from .records import Principal, RepositoryRecord, UserRecord, is_robot, json_copy, now
from .tables import Document, Tables

__all__ = ["Store", "CHANGES_NAME", "StoreError", "StorageFailure", "CorruptDataFile", "RecordNotFound",
           "AlreadyExists", "LimitReached", "ACTIVE", "DELETING", "json_copy", "generation_of"]

log = logging.getLogger(__name__)

ACTIVE = "active"
DELETING = "deleting"
NAMESPACE_JOURNAL = ".json" + JOURNAL_SUFFIX
NAMESPACE_PATHS_KEPT = 4096


def generation_of(user: Principal) -> str:
    """The account generation that tokens are bound to: ``<account id>.<serial>``.

    The serial goes up on every event that must end the account's tokens (password change,
    deactivation, :meth:`Store.bump_generation`); the random account id, fixed when the account is
    created, keeps a later account that registers a released name from matching an old token.
    Records written before generations existed count as id "" and serial 0. A robot's generation
    is the start of its token's nonce (see ``index.principals``): regenerating it ends its tokens.
    """
    if is_robot(user):
        return f"robot.{user['generation']}"
    return f"{user.get('account_id', '')}.{int(user.get('generation', 0))}"


class Store:
    """All persistent state of the index under ``root`` (the data dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_dir = self.root / "db"
        self.namespaces_dir = self.db_dir / "namespaces"
        self.activity_dir = self.db_dir / "activity"
        self._users_json = self.db_dir / "users.json"  # built once: paths are made on every read
        self._namespace_paths: dict[str, Path] = {}
        self.tables = Tables(self.root, on_commit=self._committed)
        self.changes = ChangeLog(self.db_dir / CHANGES_NAME)
        self._in_use: InUseMark | None = None

    # -- plumbing (the tables of :mod:`index.store.tables`) --------------------------------------
    def _datafile(self, path: Path) -> DataFile:
        return self.tables.datafile(path)

    def _users_path(self) -> Path:
        return self._users_json

    def namespace_path(self, namespace: str) -> Path:
        # Namespaces are validated by names.NAMESPACE_RE before they get here: no separators.
        # Kept for the namespaces in use: building a Path costs more than the read it names.
        path = self._namespace_paths.get(namespace)
        if path is None:
            if len(self._namespace_paths) >= NAMESPACE_PATHS_KEPT:
                self._namespace_paths.clear()
            path = self._namespace_paths[namespace] = self.namespaces_dir / f"{namespace}.json"
        return path

    def users_file(self) -> DataFile:
        return self._datafile(self._users_path())

    def namespace_file(self, namespace: str) -> DataFile:
        return self._datafile(self.namespace_path(namespace))

    def _transaction(self, datafile: DataFile, table: str) -> contextlib.AbstractContextManager[Any]:
        return self.tables.transaction(datafile, table)

    @contextlib.contextmanager
    def _accounts_transaction(self) -> Iterator[tuple[Any, Any]]:
        """The users and the reserved names, changed together."""
        with self.tables.database_transaction(self.users_file()) as database:
            yield database.table("users", cache_size=0), database.table("reserved", cache_size=0)

    def _reader(self, datafile: DataFile, table: str, retain: bool = True) -> Any:
        return self.tables.reader(datafile, table, retain)

    def _lookup(self, path: Path, table: str, key: str) -> dict[str, Any] | None:
        return self.tables.lookup(path, table, key)

    def _existing(self, path: Path, keep: bool = True) -> DataFile | None:
        return self.tables.existing(path, keep)

    def _committed(self, path: Path) -> None:
        if path.parent == self.namespaces_dir:
            self.changes.note(path.stem)

    def open(self) -> None:
        """Prepare the data dir: finish interrupted writes' clean-up, then check every file.

        Raises CorruptDataFile naming the first damaged file. Namespace files (one per
        namespace: tens of thousands) and the pull/push count shards (14 MB at 100,000
        repositories) get the cheap framing check, the others a full parse; none is kept in
        memory. A data dir that exists but cannot be written (read-only mount) is
        still opened, so reads keep being served.
        """
        try:
            ensure_dir(self.namespaces_dir)
        except OSError as exc:
            if not self.db_dir.is_dir():
                raise StorageFailure(f"cannot create the data directory {self.db_dir}: {exc.strerror}") from None
        self._in_use = InUseMark(self.root)
        try:
            remove_stale_temp_files(self.db_dir, self._datafile)
        except StorageFailure as exc:
            log.error("could not clean up temp files (the data dir is not writable?): %s", exc)
        framed = {str(self.namespaces_dir), str(self.activity_dir)}
        for parent, folders, names in os.walk(self.db_dir):  # strings: Path objects cost here
            folders.sort()
            for name in sorted(names):
                if name.endswith(JOURNAL_SUFFIX):
                    self._check_journal(Path(parent, name[:-len(JOURNAL_SUFFIX)]))
                    continue
                if not name.endswith(".json"):
                    continue
                if parent in framed:
                    check_framing(os.path.join(parent, name))
                else:
                    self._datafile(Path(parent, name)).check()

    def _check_journal(self, path: Path) -> None:
        """At start: parse a data file that has a journal whole (its lines are checked only by a
        full read), and remove the journal if it is stale (a writer was killed between folding
        it into its base and removing it)."""
        datafile = self._datafile(path)
        datafile.check()
        try:
            with self.writing(), datafile.locked():
                datafile.drop_stale_journal()
        except StorageFailure as exc:
            log.error("could not remove a stale journal (the data dir is not writable?): %s", exc)

    def close(self) -> None:
        """Stop marking the data dir as in use by this process (see :func:`files.exclusive_use`)."""
        if self._in_use is not None:
            self._in_use.release()

    def data_files(self) -> list[Path]:
        return walk_files(self.db_dir, lambda name: name.endswith(".json"))

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold off backups while changing files of the data dir (see :meth:`Tables.writing`)."""
        return self.tables.writing()

    def lock_all(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> contextlib.AbstractContextManager[None]:
        """Wait for running writes to finish and hold off new ones (see :meth:`Tables.lock_all`)."""
        return self.tables.lock_all(timeout)

    # -- users ------------------------------------------------------------------------------
    def find_user(self, username: str) -> UserRecord | None:
        user = self._lookup(self._users_path(), "users", username)
        return cast(UserRecord, json_copy(user)) if user is not None else None

    def list_users(self) -> list[UserRecord]:
        datafile = self._existing(self._users_path())
        if datafile is None:
            return []
        return [cast(UserRecord, json_copy(dict(doc))) for doc in self._reader(datafile, "users").all()]

    def create_user(self, username: str, password_hash: str, email: str, *,
                    active: bool = True, admin: bool = False) -> UserRecord:
        """Add an account; AlreadyExists("username"|"email") when either is taken."""
        user: UserRecord = {"username": username, "password_hash": password_hash, "emails": [email],
                            "active": active, "admin": admin, "created": now(),
                            "account_id": secrets.token_hex(8), "generation": 1}
        with self._accounts_transaction() as (users, reserved):
            # A deleted account's name stays taken until an administrator releases it, and
            # organizations share the name space (store.access).
            if users.contains(doc_id=username) or reserved.contains(doc_id=username) or self._lookup(
                    self.db_dir / "organizations.json", "organizations", username) is not None:
                raise AlreadyExists("username")
            if _email_owner(users.all(), email) is not None:
                raise AlreadyExists("email")
            users.insert(Document(user, doc_id=username))
        return json_copy(user)

    def update_user(self, username: str, *, password_hash: str | None = None,
                    add_email: str | None = None, active: bool | None = None,
                    admin: bool | None = None, max_emails: int | None = None) -> UserRecord:
        """Change an account; a new e-mail is added beside the old ones (LimitReached past
        ``max_emails``). A new password or a deactivation starts a new generation: every token
        issued before stops working."""
        with self._transaction(self.users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise RecordNotFound(f"user {username} not found")
            changes: dict[str, Any] = {}
            known = {email.lower() for email in user["emails"]}
            if add_email is not None and add_email.lower() not in known:
                if max_emails is not None and len(user["emails"]) >= max_emails:
                    raise LimitReached("e-mail addresses", max_emails)
                owner = _email_owner(users.all(), add_email)
                if owner is not None and owner != username:
                    raise AlreadyExists("email")
                changes["emails"] = [*user["emails"], add_email]
            if password_hash is not None:
                changes["password_hash"] = password_hash
            if active is not None:
                changes["active"] = active
            if admin is not None:
                changes["admin"] = admin
            if password_hash is not None or active is False:
                changes["generation"] = int(user.get("generation", 0)) + 1
            if changes:
                users.update(changes, doc_ids=[username])
            return cast(UserRecord, json_copy({**user, **changes}))

    def bump_generation(self, username: str) -> UserRecord:
        """Start a new generation of the account: every token issued to it before stops working
        (for callers that replace an account's secret, e.g. a robot token regeneration)."""
        with self._transaction(self.users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise RecordNotFound(f"user {username} not found")
            generation = int(user.get("generation", 0)) + 1
            users.update({"generation": generation}, doc_ids=[username])
            return cast(UserRecord, json_copy({**user, "generation": generation}))

    def delete_user(self, username: str) -> UserRecord:
        """Remove an account and reserve its name (see :meth:`release_name`); returns what was
        removed. Its repositories are the caller's business (index.accounts decides)."""
        with self._accounts_transaction() as (users, reserved):
            user = users.get(doc_id=username)
            if user is None:
                raise RecordNotFound(f"user {username} not found")
            users.remove(doc_ids=[username])
            # The account id goes along: releasing the name retires what that account uploaded.
            reserved.upsert(Document({"username": username, "deleted": now(),
                                      "account_id": user.get("account_id", "")}, doc_id=username))
        return cast(UserRecord, json_copy(dict(user)))

    def reserved_names(self) -> list[dict[str, Any]]:
        """The names of deleted accounts that nobody may register yet."""
        datafile = self._existing(self._users_path())
        if datafile is None:
            return []
        return [json_copy(dict(doc)) for doc in self._reader(datafile, "reserved").all()]

    def is_reserved(self, name: str) -> bool:
        return self._lookup(self._users_path(), "reserved", name) is not None

    def release_name(self, username: str) -> None:
        """Let ``username`` be registered again; RecordNotFound when it is not reserved."""
        with self._transaction(self.users_file(), "reserved") as reserved:
            if not reserved.contains(doc_id=username):
                raise RecordNotFound(f"name {username} is not reserved")
            reserved.remove(doc_ids=[username])

    def confirm_user(self, username: str, account_id: str | None = None) -> bool:
        """Activate an account whose e-mail was just confirmed, once.

        False when it was confirmed before: an old activation link must not undo an
        administrator's later deactivation. RecordNotFound also when ``account_id`` (the one the
        link was made for) is another account's: a deleted one that had the name.
        """
        with self._transaction(self.users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None or (account_id is not None and user.get("account_id", "") != account_id):
                raise RecordNotFound(f"user {username} not found")
            if user.get("confirmed"):
                return False
            users.update({"active": True, "confirmed": now()}, doc_ids=[username])
        return True

    def users_lock_available(self, timeout: float) -> bool:
        """Whether the accounts file's lock can be taken within ``timeout`` seconds (readiness)."""
        try:
            with self.users_file().locked(timeout):
                return True
        except StorageFailure:
            return False

    # -- repositories -----------------------------------------------------------------------
    def get_repository(self, namespace: str, name: str) -> RepositoryRecord | None:
        """The repository record, in whatever state (``active`` or ``deleting``)."""
        doc = self._lookup(self.namespace_path(namespace), "repositories", name)
        return _repository_view(doc) if doc is not None else None

    def has_repository(self, namespace: str, name: str) -> bool:
        """Whether the repository exists, in whatever state (no copy of its image list is made)."""
        return self._lookup(self.namespace_path(namespace), "repositories", name) is not None

    def _unchanged_by(self, namespace: str, name: str, images: list[ImageEntry]) -> bool:
        """Whether the repository is active and merging ``images`` would change nothing.

        Read without a lock: a write that changes nothing may be ordered at the moment of the
        (consistent, whole-file) version it read, so a re-push or docker's final ``[]`` costs
        neither the locks nor a private parse.
        """
        doc = self._lookup(self.namespace_path(namespace), "repositories", name)
        return doc is not None and doc["state"] == ACTIVE and not _added(doc["images"], images)

    def announce_repository(self, namespace: str, name: str, images: Iterable[ImageEntry],
                            owner: str, new_fields: dict[str, Any] | None = None) -> RepositoryRecord:
        """Create the repository or re-open it for a push, and merge the announced images.

        ``new_fields`` (visibility, grants: see store.access) are set only when it is created."""
        self.announce(namespace, name, images, owner, new_fields)
        doc = self._lookup(self.namespace_path(namespace), "repositories", name)
        if doc is None:  # deleted by another request right after
            raise _missing_repository(namespace, name)
        return _repository_view(doc)

    def announce(self, namespace: str, name: str, images: Iterable[ImageEntry],
                 owner: str, new_fields: dict[str, Any] | None = None) -> None:
        """:meth:`announce_repository` without the answer (a push's ``PUT repo/`` needs none:
        copying a list of thousands of ids for nothing is most of an O(n) request)."""
        images = list(images)
        if self._unchanged_by(namespace, name, images):
            return
        if self._patch_images(namespace, name, images, reopen=True):
            return
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            record: dict[str, Any]
            if doc is None:
                record = {"namespace": namespace, "name": name, "description": "",
                          "owner": owner, "state": ACTIVE, "created": now(), "images": {},
                          **(new_fields or {})}
            else:
                record = dict(doc)
                record["state"] = ACTIVE
                # A new push ends any delete under way: its delete token is spent.
                record.pop("delete_id", None)
            record["images"] = _merge(record["images"], images)
            # A re-push that announces nothing new changes nothing: no rewrite, no fsync.
            if doc is None or record != doc:
                record["updated"] = now()
                repos.upsert(Document(record, doc_id=name))

    def merge_images(self, namespace: str, name: str, images: Iterable[ImageEntry]) -> RepositoryRecord:
        """Add ids and checksums to an active repository's list; never removes any."""
        images = list(images)
        if not self._unchanged_by(namespace, name, images) and not self._patch_images(namespace, name, images):
            with self._transaction(self.namespace_file(namespace), "repositories") as repos:
                doc = repos.get(doc_id=name)
                if doc is None or doc["state"] != ACTIVE:
                    raise _missing_repository(namespace, name)
                record = dict(doc)
                merged = _merge(record["images"], images)
                if merged != record["images"]:
                    record["images"] = merged
                    record["updated"] = now()
                    repos.upsert(Document(record, doc_id=name))
                return _repository_view(record)
        doc = self._lookup(self.namespace_path(namespace), "repositories", name)
        if doc is None or doc["state"] != ACTIVE:
            raise _missing_repository(namespace, name)
        return _repository_view(doc)

    def _patch_images(self, namespace: str, name: str, images: list[ImageEntry], reopen: bool = False) -> bool:
        """Merge ``images`` into an existing active repository by a line in its namespace file's
        journal (:meth:`DataFile.append_patch`): one small durable append instead of rewriting
        the file. False (nothing done) when the record is missing or not active: the callers'
        whole-file transaction handles creation, re-opening and errors. ``reopen`` also ends a
        delete token left on an active record (as :meth:`announce` does)."""
        datafile = self.namespace_file(namespace)
        with self.tables.writing(), datafile.locked():
            records = datafile.read_shared().get("repositories", {})
            doc = records.get(name) if isinstance(records, dict) else None
            if not isinstance(doc, dict) or doc.get("state") != ACTIVE or not isinstance(doc.get("images"), dict):
                return False
            patch: dict[str, Any] = {}
            added = _added(doc["images"], images)
            if added:
                patch["images"] = added
            if reopen and "delete_id" in doc:
                patch["delete_id"] = None
            if patch:
                patch["updated"] = now()
                datafile.append_patch("repositories", name, patch)
                self.changes.note(namespace)  # as _committed does for a whole write
        return True

    def mark_deleting(self, namespace: str, name: str) -> RepositoryRecord:
        """Hide the repository from pulls and search until its deletion is confirmed.

        The record gets a random ``delete_id`` (kept if a delete is already under way), which the
        delete token carries: the token is good for this delete only, and is spent when the
        record goes (or a new push makes the repository active again).
        """
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise _missing_repository(namespace, name)
            delete_id = doc.get("delete_id") if doc["state"] == DELETING else None
            record = {**doc, "state": DELETING, "delete_id": delete_id or secrets.token_urlsafe(16),
                      "updated": now()}
            repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def mark_active(self, namespace: str, name: str) -> RepositoryRecord:
        """Undo :meth:`mark_deleting` (garbage collection of a deletion never confirmed)."""
        return self._set_fields(namespace, name, {"state": ACTIVE})

    def set_description(self, namespace: str, name: str, description: str) -> RepositoryRecord:
        return self._set_fields(namespace, name, {"description": description})

    def _set_fields(self, namespace: str, name: str, fields: dict[str, Any]) -> RepositoryRecord:
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise _missing_repository(namespace, name)
            record = {**doc, **fields, "updated": now()}
            repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def delete_repository(self, namespace: str, name: str) -> RepositoryRecord:
        """Remove the repository's records; returns what was removed."""
        datafile = self.namespace_file(namespace)
        with self._transaction(datafile, "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise _missing_repository(namespace, name)
            repos.remove(doc_ids=[name])
        return _repository_view(doc)

    # -- tags (the built-in registry's; kept in the repository record) -------------------------
    def set_tag(self, namespace: str, name: str, tag: str, image_id: str) -> dict[str, str]:
        """Point ``tag`` at ``image_id`` in an active repository."""
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None or doc["state"] != ACTIVE:
                raise _missing_repository(namespace, name)
            tags = {**doc.get("tags", {}), tag: image_id}
            if tags != doc.get("tags"):
                repos.upsert(Document({**doc, "tags": tags, "updated": now()}, doc_id=name))
        return tags

    def move_repository(self, namespace: str, name: str, to_namespace: str, owner: str) -> RepositoryRecord:
        """Move a repository (images, tags, description) into another namespace, for ``owner``.

        Two files change: the copy is written first, then the original removed. A move cut short
        in between leaves the copy marked ``moved_from``; running the move again finishes it.
        AlreadyExists("repository") when the target namespace already holds another one so named.
        """
        source = f"{namespace}/{name}"
        doc = self._lookup(self.namespace_path(namespace), "repositories", name)
        if doc is None:
            raise _missing_repository(namespace, name)
        with self._transaction(self.namespace_file(to_namespace), "repositories") as repos:
            existing = repos.get(doc_id=name)
            if existing is not None and existing.get("moved_from") != source:
                raise AlreadyExists("repository")
            record = {**json_copy(doc), "namespace": to_namespace, "owner": owner,
                      "moved_from": source, "updated": now()}
            record.pop("delete_id", None)
            if record.get("state") == DELETING:
                record["state"] = ACTIVE  # the delete under way was the old owner's, not the new one's
            repos.upsert(Document(record, doc_id=name))
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            if repos.contains(doc_id=name):
                repos.remove(doc_ids=[name])
        return _repository_view(record)

    def delete_tags(self, namespace: str, name: str, tags: Iterable[str] | None = None) -> list[str]:
        """Remove the given tags (all with None) of a repository in any state; returns those removed."""
        with self._transaction(self.namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise _missing_repository(namespace, name)
            current = dict(doc.get("tags", {}))
            doomed = [tag for tag in (current if tags is None else tags) if tag in current]
            if doomed:
                for tag in doomed:
                    del current[tag]
                repos.upsert(Document({**doc, "tags": current, "updated": now()}, doc_id=name))
        return doomed

    def fold_journals(self, dry_run: bool = False) -> list[str]:
        """Fold each namespace file's journal into the file (a whole write, which removes it);
        returns the namespaces that had one. What any read sees stays the same."""
        folded = []
        for journal in walk_files(self.namespaces_dir, lambda name: name.endswith(NAMESPACE_JOURNAL)):
            namespace = journal.name[:-len(NAMESPACE_JOURNAL)]
            if not dry_run:
                datafile = self.namespace_file(namespace)
                with self.writing(), datafile.locked():
                    if not datafile.journal_path.exists():
                        continue  # folded by a writer meanwhile
                    datafile.write(datafile.read_private())
            folded.append(namespace)
        return folded

    def namespaces(self) -> list[str]:
        folder = self.namespaces_dir
        if not folder.exists():
            return []
        return sorted(path.stem for path in folder.glob("*.json"))

    def iter_repositories(self, namespace: str | None = None, *, retain: bool = True) -> Iterator[RepositoryRecord]:
        """Every repository record (all states), namespace by namespace.

        ``retain=False`` for a pass over many namespaces (the search index): each file's parse is
        dropped after use instead of staying in this process's read cache, and no DataFile is
        kept for a file this process did not hold one for.
        """
        for ns in ([namespace] if namespace else self.namespaces()):
            datafile = self._existing(self.namespace_path(ns), keep=retain)
            if datafile is None:
                continue
            for doc in self._reader(datafile, "repositories", retain).all():
                yield _repository_view(doc)

    # -- change detection, for what a worker keeps in memory (index.search_index) ------------
    def namespaces_version(self) -> tuple[int, int] | None:
        """(inode, mtime_ns) of the namespaces folder; None while there is none.

        Every write that can change what search finds renames a new file into that folder and a
        removal unlinks one, so this value changes whenever any process changes any namespace's
        repositories, descriptions or visibility (as finely as the file system's time stamps go).
        Lines appended to a namespace's journal (:meth:`_patch_images`) do not change it: they
        only add image ids to active repositories, which search does not look at. Keep it so if
        the layout changes: the search index relies on it.
        """
        info = stat_or_none(self.namespaces_dir, "the namespaces folder")
        return (info.st_ino, info.st_mtime_ns) if info else None

    # -- the change log (:mod:`index.store.changes`) -------------------------------------------
    def changes_position(self) -> tuple[int, int] | None:
        """(inode, size) of the change log; None while there is none."""
        return self.changes.position()

    def changes_since(self, position: tuple[int, int]) -> tuple[tuple[int, int], set[str]] | None:
        """The namespaces written since ``position`` and the new position (:meth:`ChangeLog.since`)."""
        return self.changes.since(position)

    def namespace_version(self, namespace: str) -> tuple[int, int, int] | None:
        """The version of one namespace's file (see :meth:`namespace_versions`); None when there
        is none."""
        path = self.namespace_path(namespace)
        info = stat_or_none(path, f"namespace {namespace}")
        if info is None:
            return None
        journal = stat_or_none(journal_path(path), f"namespace {namespace}")
        return _version(info, journal)

    def namespace_versions(self) -> dict[str, tuple[int, int, int]]:
        """Each namespace with its file's version: (inode, size, mtime_ns) of its file, with the
        size and time of its journal (if any) added in, so a new value after every write."""
        versions: dict[str, tuple[int, int, int]] = {}
        journals: dict[str, os.stat_result] = {}
        try:
            with os.scandir(self.namespaces_dir) as entries:
                for entry in entries:
                    is_journal = entry.name.endswith(NAMESPACE_JOURNAL)
                    if not is_journal and not entry.name.endswith(".json"):
                        continue  # lock and temp files
                    try:
                        info = entry.stat()
                    except FileNotFoundError:
                        continue  # removed since the folder was listed
                    if is_journal:
                        journals[entry.name[:-len(NAMESPACE_JOURNAL)]] = info
                    else:
                        versions[entry.name[:-len(".json")]] = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageFailure(f"could not read the namespaces folder: {exc.strerror}") from None
        for namespace, journal in journals.items():
            base = versions.get(namespace)
            if base is not None:
                versions[namespace] = _combined(base, journal)
        return versions


def _version(info: os.stat_result, journal: os.stat_result | None) -> tuple[int, int, int]:
    base = (info.st_ino, info.st_size, info.st_mtime_ns)
    return base if journal is None else _combined(base, journal)


def _combined(base: tuple[int, int, int], journal: os.stat_result) -> tuple[int, int, int]:
    """A namespace file's version with its journal's: a journal only grows until a new base (new
    inode) replaces it, so base size + journal size and the later mtime change with every write."""
    return base[0], base[1] + journal.st_size, max(base[2], journal.st_mtime_ns)


def _missing_repository(namespace: str, name: str) -> RecordNotFound:
    # Named as the API names it: a library repository without "library/".
    shown = name if namespace == LIBRARY else f"{namespace}/{name}"
    return RecordNotFound(f"repository {shown} not found")


def _added(known: Mapping[str, str], images: Iterable[ImageEntry]) -> dict[str, str]:
    """What merging ``images`` into ``known`` (id -> checksum, "" while unknown) adds or changes,
    without copying ``known``: new ids, and a checksum for an id that had none. The first known
    checksum of an id is kept."""
    added: dict[str, str] = {}
    for image in images:
        image_id, checksum = image["id"], image.get("checksum", "")
        current = added.get(image_id, known.get(image_id))
        if current is None or (not current and checksum):
            added[image_id] = checksum
    return added


def _merge(known: dict[str, str], images: Iterable[ImageEntry]) -> dict[str, str]:
    """``known`` with ``images`` merged in (a new dict; see :func:`_added`)."""
    return {**known, **_added(known, images)}


def _email_owner(users: Iterable[dict[str, Any]], email: str) -> str | None:
    wanted = email.lower()
    for user in users:
        if any(known.lower() == wanted for known in user.get("emails", [])):
            return str(user["username"])
    return None


def _repository_view(doc: Mapping[str, Any]) -> RepositoryRecord:
    """A private copy with the image list in the wire form ``[{"id", "checksum"?}]``."""
    record = {key: json_copy(value) for key, value in doc.items() if key != "images"}
    record["images"] = [{"id": image_id, "checksum": checksum} if checksum else {"id": image_id}
                        for image_id, checksum in doc.get("images", {}).items()]
    return cast(RepositoryRecord, record)
