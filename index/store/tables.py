"""TinyDB on the durable files of :mod:`index.store.files`: the store's storage seam.

:class:`Tables` hands out one :class:`~index.store.files.DataFile` per path, opens a table of a
file for one read-modify-write (:meth:`Tables.transaction`) or reads one record by its key
(:meth:`Tables.lookup`), and holds the data dir's write gate that a backup closes.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tinydb.table
from tinydb import Storage, TinyDB
from tinydb.table import Table

from .errors import CorruptDataFile
from .files import GATE_LOCK, LOCK_TIMEOUT_SECONDS, DataFile, ForkSafe, KeptParses, flocked

# A document keyed by a string (see KeyedTable); TinyDB's type hints only allow int ids.
Document: Any = tinydb.table.Document


class KeyedTable(Table):
    """Documents keyed by a string (username, repository name) for O(1) look-ups.

    TinyDB's type hints say document ids are ints, so the tables are handed out as ``Any``.
    """

    document_id_class = str  # type: ignore[assignment]


class _ReadStorage(Storage):
    """TinyDB's storage seam for reads: the DataFile's shared, cached parse."""

    def __init__(self, datafile: DataFile, retain: bool = True) -> None:
        self._datafile = datafile
        self._retain = retain

    def read(self) -> dict[str, Any] | None:
        return self._datafile.read_shared(retain=self._retain)

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


class Tables(ForkSafe):
    """The JSON files under one data dir (``root``), as TinyDB tables.

    ``on_commit`` is called with a file's path after a transaction wrote it.
    """

    def __init__(self, root: Path, on_commit: Callable[[Path], None]) -> None:
        self.root = Path(root)
        self._on_commit = on_commit
        self._files: dict[Path, DataFile] = {}
        self.kept = KeptParses()  # how many of their parses stay in memory
        super().__init__()

    def _new_locks(self) -> None:
        self._files_lock = threading.Lock()
        # Set while this thread holds every write off (lock_all): its own writes then go ahead.
        self._holding_all = threading.local()

    def datafile(self, path: Path) -> DataFile:
        """The one DataFile of ``path`` in this process."""
        with self._files_lock:
            datafile = self._files.get(path)
            if datafile is None:
                datafile = self._files[path] = DataFile(path, self.kept)
            return datafile

    def existing(self, path: Path, keep: bool = True) -> DataFile | None:
        """The DataFile for reading ``path``; None when the file does not exist.

        Reads of names that do not exist (any URL can name one) create no lasting object, nor
        does ``keep=False`` (one pass over every file: the search index): a read takes no lock,
        so a DataFile of its own serves it as well as the shared one.
        """
        with self._files_lock:
            datafile = self._files.get(path)
        if datafile is None and not path.exists():
            return None
        if datafile is None and not keep:
            return DataFile(path)
        return datafile or self.datafile(path)

    @contextlib.contextmanager
    def transaction(self, datafile: DataFile, table: str) -> Iterator[Any]:
        """One whole read-modify-write under the file's lock, on freshly read data.

        The gate is held shared so that a backup (exclusive) sees no write half-way through; a
        fresh TinyDB and table each time, since TinyDB caches query results per table object.
        """
        with self.database_transaction(datafile) as database:
            yield database.table(table, cache_size=0)

    @contextlib.contextmanager
    def database_transaction(self, datafile: DataFile) -> Iterator[TinyDB]:
        """As :meth:`transaction`, for a change that spans several tables of one file."""
        with self.writing(), datafile.locked():
            storage = _TransactionStorage(datafile)
            yield _Database(storage=_StorageFactory(storage))
            if storage.commit():
                self._on_commit(datafile.path)

    @staticmethod
    def reader(datafile: DataFile, table: str, retain: bool = True) -> Any:
        """A read-only table on the file's shared parse (queries, ``all()``); ``retain=False``
        does not keep a new parse in the file's cache."""
        return _Database(storage=_StorageFactory(_ReadStorage(datafile, retain))).table(table, cache_size=0)

    def lookup(self, path: Path, table: str, key: str) -> dict[str, Any] | None:
        """One record by its key, straight from the file's shared parse (do not mutate it).

        A look-up by key needs no query: skipping TinyDB's table set-up here matters because
        every request of a push and a pull makes one or two of these.
        """
        datafile = self.existing(path)
        if datafile is None:
            return None
        records = datafile.read_shared().get(table, {})
        if not isinstance(records, dict):
            raise CorruptDataFile(path, f"table {table!r} is not a JSON object")
        record = records.get(key)
        if record is not None and not isinstance(record, dict):
            raise CorruptDataFile(path, f"record {key!r} in table {table!r} is not a JSON object")
        return record

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
