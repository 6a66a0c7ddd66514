"""The index's data, behind methods that speak the domain.

TinyDB is the query layer; :mod:`index.store.files` makes it durable and safe across threads and
processes. Data is split so that a write costs what the touched part holds:

    <data dir>/db/users.json                 every account, keyed by username
    <data dir>/db/namespaces/<namespace>.json that namespace's repositories and their image lists

Methods return plain dicts (copies) or raise :class:`NotFound` / :class:`AlreadyExists`.
"""
from __future__ import annotations

import contextlib
import copy
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from tinydb import Storage, TinyDB
from tinydb.table import Document, Table

from .files import CorruptDataFile, DataFile, StorageFailure, StoreError, remove_stale_temp_files

__all__ = ["Store", "StoreError", "StorageFailure", "CorruptDataFile", "NotFound", "AlreadyExists"]

ACTIVE = "active"
DELETING = "deleting"


class NotFound(StoreError):
    """The user or repository does not exist."""


class AlreadyExists(StoreError):
    """A unique value (``field``) is taken."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


class KeyedTable(Table):
    """Documents keyed by a string (username, repository name) for O(1) look-ups."""

    document_id_class = str


class _FileStorage(Storage):
    """TinyDB's storage seam over a DataFile: shared cached reads, or private copies to write."""

    def __init__(self, datafile: DataFile, writable: bool) -> None:
        self._datafile = datafile
        self._writable = writable

    def read(self) -> dict[str, Any] | None:
        if self._writable:
            return self._datafile.read_private()
        return self._datafile.read_shared()

    def write(self, data: dict[str, Any]) -> None:
        if not self._writable:
            raise RuntimeError("write outside a transaction")
        self._datafile.write(data)


class _Database(TinyDB):
    table_class = KeyedTable


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """All persistent state of the index under ``root`` (the data dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_dir = self.root / "db"
        self._files: dict[Path, DataFile] = {}
        self._files_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    def _datafile(self, path: Path) -> DataFile:
        with self._files_lock:
            datafile = self._files.get(path)
            if datafile is None:
                datafile = self._files[path] = DataFile(path)
            return datafile

    def _users_file(self) -> DataFile:
        return self._datafile(self.db_dir / "users.json")

    def _namespace_file(self, namespace: str) -> DataFile:
        # Namespaces are validated by names.NAMESPACE_RE before they get here: no separators.
        return self._datafile(self.db_dir / "namespaces" / f"{namespace}.json")

    @contextlib.contextmanager
    def _transaction(self, datafile: DataFile, table: str) -> Iterator[Table]:
        """One whole read-modify-write under the file's lock, on freshly read data."""
        with datafile.locked():
            yield _Database(storage=_FileStorage, datafile=datafile, writable=True).table(table, cache_size=0)

    @staticmethod
    def _reader(datafile: DataFile, table: str) -> Table:
        return _Database(storage=_FileStorage, datafile=datafile, writable=False).table(table, cache_size=0)

    def open(self) -> None:
        """Prepare the data dir: finish interrupted writes' clean-up, then parse every file.

        Raises CorruptDataFile naming the first file that does not parse.
        """
        try:
            self.db_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageFailure(f"cannot create the data directory {self.db_dir}: {exc.strerror}") from None
        remove_stale_temp_files(self.db_dir, self._datafile)
        for path in sorted(self.db_dir.rglob("*.json")):
            self._datafile(path).check()

    def data_files(self) -> list[Path]:
        return sorted(self.db_dir.rglob("*.json"))

    def lock_all(self) -> contextlib.ExitStack:
        """Hold every data file's lock (for a consistent backup). Use as a context manager."""
        stack = contextlib.ExitStack()
        try:
            for path in self.data_files():
                stack.enter_context(self._datafile(path).locked())
        except BaseException:
            stack.close()
            raise
        return stack

    # -- users ------------------------------------------------------------------------------
    def find_user(self, username: str) -> dict[str, Any] | None:
        doc = self._reader(self._users_file(), "users").get(doc_id=username)
        return copy.deepcopy(dict(doc)) if doc is not None else None

    def list_users(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(dict(doc)) for doc in self._reader(self._users_file(), "users").all()]

    def create_user(self, username: str, password_hash: str, email: str, *,
                    active: bool = True, admin: bool = False) -> dict[str, Any]:
        """Add an account; AlreadyExists("username"|"email") when either is taken."""
        user = {"username": username, "password_hash": password_hash, "emails": [email],
                "active": active, "admin": admin, "created": _now()}
        with self._transaction(self._users_file(), "users") as users:
            if users.contains(doc_id=username):
                raise AlreadyExists("username")
            if _email_owner(users.all(), email) is not None:
                raise AlreadyExists("email")
            users.insert(Document(user, doc_id=username))
        return copy.deepcopy(user)

    def update_user(self, username: str, *, password_hash: str | None = None,
                    add_email: str | None = None, active: bool | None = None,
                    admin: bool | None = None) -> dict[str, Any]:
        """Change an account; a new e-mail is added beside the old ones."""
        with self._transaction(self._users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise NotFound(f"user {username} not found")
            changes: dict[str, Any] = {}
            if add_email is not None and add_email not in user["emails"]:
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
            if changes:
                users.update(changes, doc_ids=[username])
            return copy.deepcopy({**user, **changes})

    # -- repositories -----------------------------------------------------------------------
    def get_repository(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The repository record, in whatever state (``active`` or ``deleting``)."""
        doc = self._reader(self._namespace_file(namespace), "repositories").get(doc_id=name)
        return _repository_view(doc) if doc is not None else None

    def announce_repository(self, namespace: str, name: str, images: Iterable[dict[str, str]],
                            owner: str) -> dict[str, Any]:
        """Create the repository or re-open it for a push, and merge the announced images."""
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                record = {"namespace": namespace, "name": name, "description": "",
                          "owner": owner, "state": ACTIVE, "created": _now(), "images": {}}
            else:
                record = dict(doc)
                record["state"] = ACTIVE
            record["images"] = _merge(record["images"], images)
            record["updated"] = _now()
            repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def merge_images(self, namespace: str, name: str, images: Iterable[dict[str, str]]) -> dict[str, Any]:
        """Add ids and checksums to an active repository's list; never removes any."""
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None or doc["state"] != ACTIVE:
                raise NotFound(f"repository {namespace}/{name} not found")
            record = dict(doc)
            merged = _merge(record["images"], images)
            if merged != record["images"]:
                record["images"] = merged
                record["updated"] = _now()
                repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def mark_deleting(self, namespace: str, name: str) -> dict[str, Any]:
        """Hide the repository from pulls and search until its deletion is confirmed."""
        return self._set_fields(namespace, name, {"state": DELETING})

    def set_description(self, namespace: str, name: str, description: str) -> dict[str, Any]:
        return self._set_fields(namespace, name, {"description": description})

    def _set_fields(self, namespace: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise NotFound(f"repository {namespace}/{name} not found")
            record = {**doc, **fields, "updated": _now()}
            repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def delete_repository(self, namespace: str, name: str) -> dict[str, Any]:
        """Remove the repository's records; returns what was removed."""
        datafile = self._namespace_file(namespace)
        with self._transaction(datafile, "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise NotFound(f"repository {namespace}/{name} not found")
            repos.remove(doc_ids=[name])
        return _repository_view(doc)

    def namespaces(self) -> list[str]:
        folder = self.db_dir / "namespaces"
        if not folder.exists():
            return []
        return sorted(path.stem for path in folder.glob("*.json"))

    def iter_repositories(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Every repository record (all states), namespace by namespace."""
        for ns in ([namespace] if namespace else self.namespaces()):
            for doc in self._reader(self._namespace_file(ns), "repositories").all():
                yield _repository_view(doc)

    # -- change detection, for what a worker keeps in memory (index.search_index) ------------
    def namespaces_version(self) -> tuple[int, int] | None:
        """(inode, mtime_ns) of the namespaces folder; None while there is none.

        Every write renames a new file into that folder and a removal unlinks one, so this value
        changes whenever any process changes any namespace (as finely as the file system's time
        stamps go). Keep it so if the layout changes: the search index relies on it.
        """
        try:
            info = os.stat(self.db_dir / "namespaces")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageFailure(f"could not read the namespaces folder: {exc.strerror}") from None
        return info.st_ino, info.st_mtime_ns

    def namespace_versions(self) -> dict[str, tuple[int, int, int]]:
        """Each namespace with its file's (inode, size, mtime_ns): a new value after every write."""
        versions: dict[str, tuple[int, int, int]] = {}
        try:
            with os.scandir(self.db_dir / "namespaces") as entries:
                for entry in entries:
                    if not entry.name.endswith(".json"):
                        continue  # lock and temp files
                    try:
                        info = entry.stat()
                    except FileNotFoundError:
                        continue  # removed since the folder was listed
                    versions[entry.name[:-len(".json")]] = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageFailure(f"could not read the namespaces folder: {exc.strerror}") from None
        return versions


def _merge(known: dict[str, str], images: Iterable[dict[str, str]]) -> dict[str, str]:
    """id -> checksum ("" while unknown). The first known checksum of an id is kept."""
    merged = dict(known)
    for image in images:
        checksum = image.get("checksum", "")
        if not merged.get(image["id"]):
            merged[image["id"]] = checksum
    return merged


def _email_owner(users: Iterable[dict[str, Any]], email: str) -> str | None:
    wanted = email.lower()
    for user in users:
        if any(known.lower() == wanted for known in user.get("emails", [])):
            return user["username"]
    return None


def _repository_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A private copy with the image list in the wire form ``[{"id", "checksum"?}]``."""
    record = copy.deepcopy(dict(doc))
    record["images"] = [{"id": image_id, "checksum": checksum} if checksum else {"id": image_id}
                        for image_id, checksum in doc.get("images", {}).items()]
    return record
