"""The index's data, behind methods that speak the domain.

TinyDB is the query layer; :mod:`index.store.files` makes it durable and safe across threads and
processes. Data is split so that a write costs what the touched part holds:

    <data dir>/db/users.json                 every account, keyed by username
    <data dir>/db/namespaces/<namespace>.json that namespace's repositories and their image lists

Methods return plain dicts (copies) or raise :class:`NotFound` / :class:`AlreadyExists`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from tinydb import Storage, TinyDB
from tinydb.table import Document, Table

from .files import (GATE_LOCK, LOCK_TIMEOUT_SECONDS, CorruptDataFile, DataFile, ForkSafe, InUseMark,
                    StorageFailure, StoreError, ensure_dir, flocked, remove_stale_temp_files)

__all__ = ["Store", "CHANGES_NAME", "StoreError", "StorageFailure", "CorruptDataFile", "NotFound", "AlreadyExists"]

log = logging.getLogger(__name__)

ACTIVE = "active"
DELETING = "deleting"
# The change log: one namespace name per line, appended after each namespace write (see
# Store.changes_since). Started afresh once it passes CHANGES_MAX_BYTES.
CHANGES_NAME = "namespaces.changes"
CHANGES_MAX_BYTES = 1 << 20


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


class _ReadStorage(Storage):
    """TinyDB's storage seam for reads: the DataFile's shared, cached parse."""

    def __init__(self, datafile: DataFile) -> None:
        self._datafile = datafile

    def read(self) -> dict[str, Any] | None:
        return self._datafile.read_shared()

    def write(self, data: dict[str, Any]) -> None:
        raise RuntimeError("write outside a transaction")


class _TransactionStorage(Storage):
    """TinyDB's storage seam inside one transaction: parse once, write once at commit.

    TinyDB reads and writes the whole document on every operation; a store method makes several
    (look up, check, insert), so the working copy stays in memory and only a transaction that ends
    without an exception writes it back. A method that raises half-way changes nothing on disk.
    """

    def __init__(self, datafile: DataFile) -> None:
        self._datafile = datafile
        self._working: dict[str, Any] | None = None
        self._dirty = False

    def read(self) -> dict[str, Any] | None:
        if self._working is None:
            self._working = self._datafile.read_private()
        return self._working

    def write(self, data: dict[str, Any]) -> None:
        self._working = data
        self._dirty = True

    def commit(self) -> bool:
        """Write the working copy if anything changed it; True when the file was written."""
        written = False
        if self._dirty and self._working is not None:
            self._datafile.write(self._working)
            written = True
        self._working = None
        self._dirty = False
        return written


class _StorageFactory:
    """TinyDB builds its storage from a class; hand it an instance we already made."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def __call__(self) -> Storage:
        return self._storage


class _Database(TinyDB):
    table_class = KeyedTable


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store(ForkSafe):
    """All persistent state of the index under ``root`` (the data dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_dir = self.root / "db"
        self.namespaces_dir = self.db_dir / "namespaces"
        self._users_json = self.db_dir / "users.json"  # built once: paths are made on every read
        self.changes_path = self.db_dir / CHANGES_NAME
        self._files: dict[Path, DataFile] = {}
        self._in_use: InUseMark | None = None
        super().__init__()

    def _new_locks(self) -> None:
        self._files_lock = threading.Lock()
        # Set while this thread holds every write off (lock_all): its own writes then go ahead.
        self._holding_all = threading.local()

    # -- plumbing ---------------------------------------------------------------------------
    def _datafile(self, path: Path) -> DataFile:
        with self._files_lock:
            datafile = self._files.get(path)
            if datafile is None:
                datafile = self._files[path] = DataFile(path)
            return datafile

    def _users_path(self) -> Path:
        return self._users_json

    def _namespace_path(self, namespace: str) -> Path:
        # Namespaces are validated by names.NAMESPACE_RE before they get here: no separators.
        return self.namespaces_dir / f"{namespace}.json"

    def _users_file(self) -> DataFile:
        return self._datafile(self._users_path())

    def _namespace_file(self, namespace: str) -> DataFile:
        return self._datafile(self._namespace_path(namespace))

    @contextlib.contextmanager
    def _transaction(self, datafile: DataFile, table: str) -> Iterator[Table]:
        """One whole read-modify-write under the file's lock, on freshly read data.

        The gate is held shared so that a backup (exclusive) sees no write half-way through; a
        fresh TinyDB and table each time, since TinyDB caches query results per table object.
        """
        with self.writing(), datafile.locked():
            storage = _TransactionStorage(datafile)
            yield _Database(storage=_StorageFactory(storage)).table(table, cache_size=0)
            if storage.commit() and datafile.path.parent == self.namespaces_dir:
                self._note_change(datafile.path.stem)

    @staticmethod
    def _reader(datafile: DataFile, table: str) -> Table:
        return _Database(storage=_StorageFactory(_ReadStorage(datafile))).table(table, cache_size=0)

    def _lookup(self, path: Path, table: str, key: str) -> dict[str, Any] | None:
        """One record by its key, straight from the file's shared parse (do not mutate it).

        A look-up by key needs no query: skipping TinyDB's table set-up here matters because
        every request of a push and a pull makes one or two of these.
        """
        datafile = self._existing(path)
        if datafile is None:
            return None
        records = datafile.read_shared().get(table, {})
        if not isinstance(records, dict):
            raise CorruptDataFile(path, f"table {table!r} is not a JSON object")
        record = records.get(key)
        if record is not None and not isinstance(record, dict):
            raise CorruptDataFile(path, f"record {key!r} in table {table!r} is not a JSON object")
        return record

    def _existing(self, path: Path) -> DataFile | None:
        """The DataFile for reading ``path``; None when the file does not exist.

        Reads of names that do not exist (any URL can name one) create no lasting object.
        """
        with self._files_lock:
            datafile = self._files.get(path)
        if datafile is None and not path.exists():
            return None
        return datafile or self._datafile(path)

    def open(self) -> None:
        """Prepare the data dir: finish interrupted writes' clean-up, then parse every file.

        Raises CorruptDataFile naming the first file that does not parse. A data dir that exists
        but cannot be written (read-only mount) is still opened, so reads keep being served.
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
        for path in self.data_files():
            self._datafile(path).check()

    def close(self) -> None:
        """Stop marking the data dir as in use by this process (see :func:`files.exclusive_use`)."""
        if self._in_use is not None:
            self._in_use.release()

    def data_files(self) -> list[Path]:
        return sorted(path for path in self.db_dir.rglob("*.json") if path.is_file())

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off backups while changing files of the data dir (held shared: writers run together).

        Other parts that keep files in the data dir (layers) should write inside this too, or
        write each file to a temp name and rename it, so a backup never catches one half-written.
        """
        if getattr(self._holding_all, "held", False):
            yield  # inside lock_all on this thread: a shared flock would wait for ourselves
            return
        with flocked(self.root / GATE_LOCK, exclusive=False):
            yield

    @contextlib.contextmanager
    def lock_all(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
        """Wait for running writes to finish and hold off new ones (for a consistent backup).

        Writes that arrive meanwhile wait up to their own lock timeout, then answer 503.
        """
        with flocked(self.root / GATE_LOCK, exclusive=True, timeout=timeout):
            self._holding_all.held = True
            try:
                yield
            finally:
                self._holding_all.held = False

    # -- users ------------------------------------------------------------------------------
    def find_user(self, username: str) -> dict[str, Any] | None:
        user = self._lookup(self._users_path(), "users", username)
        return json_copy(user) if user is not None else None

    def list_users(self) -> list[dict[str, Any]]:
        datafile = self._existing(self._users_path())
        if datafile is None:
            return []
        return [json_copy(dict(doc)) for doc in self._reader(datafile, "users").all()]

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
        return json_copy(user)

    def update_user(self, username: str, *, password_hash: str | None = None,
                    add_email: str | None = None, active: bool | None = None,
                    admin: bool | None = None) -> dict[str, Any]:
        """Change an account; a new e-mail is added beside the old ones."""
        with self._transaction(self._users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise NotFound(f"user {username} not found")
            changes: dict[str, Any] = {}
            known = {email.lower() for email in user["emails"]}
            if add_email is not None and add_email.lower() not in known:
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
            return json_copy({**user, **changes})

    def delete_user(self, username: str) -> dict[str, Any]:
        """Remove an account (its repositories stay); returns what was removed."""
        with self._transaction(self._users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise NotFound(f"user {username} not found")
            users.remove(doc_ids=[username])
        return json_copy(dict(user))

    def confirm_user(self, username: str) -> bool:
        """Activate an account whose e-mail was just confirmed, once.

        False when it was confirmed before: an old activation link must not undo an
        administrator's later deactivation.
        """
        with self._transaction(self._users_file(), "users") as users:
            user = users.get(doc_id=username)
            if user is None:
                raise NotFound(f"user {username} not found")
            if user.get("confirmed"):
                return False
            users.update({"active": True, "confirmed": _now()}, doc_ids=[username])
        return True

    def users_lock_available(self, timeout: float) -> bool:
        """Whether the accounts file's lock can be taken within ``timeout`` seconds (readiness)."""
        try:
            with self._users_file().locked(timeout):
                return True
        except StorageFailure:
            return False

    # -- repositories -----------------------------------------------------------------------
    def get_repository(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The repository record, in whatever state (``active`` or ``deleting``)."""
        doc = self._lookup(self._namespace_path(namespace), "repositories", name)
        return _repository_view(doc) if doc is not None else None

    def _unchanged_by(self, namespace: str, name: str, images: list[dict[str, str]]) -> dict[str, Any] | None:
        """The active repository's view if merging ``images`` would change nothing, else None.

        Read without a lock: a write that changes nothing may be ordered at the moment of the
        (consistent, whole-file) version it read, so a re-push or docker's final ``[]`` costs
        neither the locks nor a private parse.
        """
        doc = self._lookup(self._namespace_path(namespace), "repositories", name)
        if doc is None or doc["state"] != ACTIVE or _merge(doc["images"], images) != doc["images"]:
            return None
        return _repository_view(doc)

    def announce_repository(self, namespace: str, name: str, images: Iterable[dict[str, str]],
                            owner: str) -> dict[str, Any]:
        """Create the repository or re-open it for a push, and merge the announced images."""
        images = list(images)
        unchanged = self._unchanged_by(namespace, name, images)
        if unchanged is not None:
            return unchanged
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                record = {"namespace": namespace, "name": name, "description": "",
                          "owner": owner, "state": ACTIVE, "created": _now(), "images": {}}
            else:
                record = dict(doc)
                record["state"] = ACTIVE
            record["images"] = _merge(record["images"], images)
            # A re-push that announces nothing new changes nothing: no rewrite, no fsync.
            if doc is None or record["images"] != doc["images"] or doc["state"] != ACTIVE:
                record["updated"] = _now()
                repos.upsert(Document(record, doc_id=name))
        return _repository_view(record)

    def merge_images(self, namespace: str, name: str, images: Iterable[dict[str, str]]) -> dict[str, Any]:
        """Add ids and checksums to an active repository's list; never removes any."""
        images = list(images)
        unchanged = self._unchanged_by(namespace, name, images)
        if unchanged is not None:
            return unchanged
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

    def mark_active(self, namespace: str, name: str) -> dict[str, Any]:
        """Undo :meth:`mark_deleting` (garbage collection of a deletion never confirmed)."""
        return self._set_fields(namespace, name, {"state": ACTIVE})

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

    # -- tags (the built-in registry's; kept in the repository record) -------------------------
    def set_tag(self, namespace: str, name: str, tag: str, image_id: str) -> dict[str, Any]:
        """Point ``tag`` at ``image_id`` in an active repository."""
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None or doc["state"] != ACTIVE:
                raise NotFound(f"repository {namespace}/{name} not found")
            tags = {**doc.get("tags", {}), tag: image_id}
            if tags != doc.get("tags"):
                repos.upsert(Document({**doc, "tags": tags, "updated": _now()}, doc_id=name))
        return tags

    def delete_tags(self, namespace: str, name: str, tags: Iterable[str] | None = None) -> list[str]:
        """Remove the given tags (all with None) of a repository in any state; returns those removed."""
        with self._transaction(self._namespace_file(namespace), "repositories") as repos:
            doc = repos.get(doc_id=name)
            if doc is None:
                raise NotFound(f"repository {namespace}/{name} not found")
            current = dict(doc.get("tags", {}))
            doomed = [tag for tag in (current if tags is None else tags) if tag in current]
            if doomed:
                for tag in doomed:
                    del current[tag]
                repos.upsert(Document({**doc, "tags": current, "updated": _now()}, doc_id=name))
        return doomed

    def namespaces(self) -> list[str]:
        folder = self.namespaces_dir
        if not folder.exists():
            return []
        return sorted(path.stem for path in folder.glob("*.json"))

    def iter_repositories(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Every repository record (all states), namespace by namespace."""
        for ns in ([namespace] if namespace else self.namespaces()):
            datafile = self._existing(self._namespace_path(ns))
            if datafile is None:
                continue
            for doc in self._reader(datafile, "repositories").all():
                yield _repository_view(doc)

    # -- change detection, for what a worker keeps in memory (index.search_index) ------------
    def namespaces_version(self) -> tuple[int, int] | None:
        """(inode, mtime_ns) of the namespaces folder; None while there is none.

        Every write renames a new file into that folder and a removal unlinks one, so this value
        changes whenever any process changes any namespace (as finely as the file system's time
        stamps go). Keep it so if the layout changes: the search index relies on it.
        """
        info = _stat(self.namespaces_dir, "the namespaces folder")
        return (info.st_ino, info.st_mtime_ns) if info else None

    # -- the change log: which namespaces were written, for readers in other processes ----------
    def _note_change(self, namespace: str) -> None:
        """Append ``namespace`` to the change log, after its file was renamed into place.

        A hint for the search index of every worker, so it re-reads one file instead of stat'ing
        every namespace file: not fsynced (after a crash every worker starts with a full scan), and
        a failure to append is only logged (readers still notice the change by a full scan; see
        :meth:`changes_since`). Lines are a few bytes, so O_APPEND keeps concurrent ones whole.
        """
        try:
            fd = os.open(self.changes_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{namespace}\n".encode())
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > CHANGES_MAX_BYTES:
                # Readers see a new (or no) file and fall back to one full scan. An append racing
                # this lands in the unlinked file, but its namespace file was renamed into place
                # before, so that full scan, which starts after this unlink, finds it.
                os.unlink(self.changes_path)
        except FileNotFoundError:
            pass  # another writer started the log afresh at the same moment
        except OSError as exc:
            log.warning("could not append to the change log %s: %s", self.changes_path, exc.strerror)

    def changes_position(self) -> tuple[int, int] | None:
        """(inode, size) of the change log; None while there is none."""
        info = _stat(self.changes_path, "the change log")
        return (info.st_ino, info.st_size) if info else None

    def changes_since(self, position: tuple[int, int]) -> tuple[tuple[int, int], set[str]] | None:
        """The namespaces written since ``position`` (from :meth:`changes_position`) and the new
        position; None when the log was started afresh or removed since (read everything then).

        A namespace appears here only after its file holds the change, so a reader that re-reads
        the listed files is at least as new as the position it got.
        """
        inode, offset = position
        try:
            with open(self.changes_path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if info.st_ino != inode or info.st_size < offset:
                    return None
                handle.seek(offset)
                data = handle.read(CHANGES_MAX_BYTES * 2)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageFailure(f"could not read the change log: {exc.strerror}") from None
        complete = data[:data.rfind(b"\n") + 1]  # a line being appended right now: next time
        names = {line.decode("utf-8", "replace") for line in complete.split(b"\n") if line}
        # Only names that can be namespace files count (the log is ours, but it is a file on disk).
        return (inode, offset + len(complete)), {name for name in names
                                                 if "/" not in name and "\x00" not in name
                                                 and not name.startswith(".")}

    def namespace_version(self, namespace: str) -> tuple[int, int, int] | None:
        """The (inode, size, mtime_ns) of one namespace's file; None when there is none."""
        info = _stat(self._namespace_path(namespace), f"namespace {namespace}")
        return (info.st_ino, info.st_size, info.st_mtime_ns) if info else None

    def namespace_versions(self) -> dict[str, tuple[int, int, int]]:
        """Each namespace with its file's (inode, size, mtime_ns): a new value after every write."""
        versions: dict[str, tuple[int, int, int]] = {}
        try:
            with os.scandir(self.namespaces_dir) as entries:
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


def _stat(path: Path, what: str) -> os.stat_result | None:
    """``os.stat``, None for a missing path; other errors are a StorageFailure naming ``what``."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageFailure(f"could not read {what}: {exc.strerror}") from None


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


def json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars): what ``copy.deepcopy`` does for it,
    several times faster, since records are copied on every read that hands one out."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def _repository_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A private copy with the image list in the wire form ``[{"id", "checksum"?}]``."""
    record = {key: json_copy(value) for key, value in doc.items() if key != "images"}
    record["images"] = [{"id": image_id, "checksum": checksum} if checksum else {"id": image_id}
                        for image_id, checksum in doc.get("images", {}).items()]
    return record
