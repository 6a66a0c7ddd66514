"""An in-memory search index of active repositories, one per worker process, kept fresh.

``GET /v1/search`` used to read every repository record for every query: about a second at
100,000 repositories. This index answers the same question (which active repositories contain
the lower-cased query in ``namespace/name`` or in their lower-cased description) from memory:

* Text is split into *tokens*, the longest runs without an ASCII separator (anything but
  ``0-9 A-Z a-z``; other characters belong to tokens). A query without separators occurs in a
  text exactly when it occurs inside one of the text's tokens, so its matches are the union of
  the postings of the tokens that contain it: one scan of the distinct tokens, not of every text.
  A query with separators is checked exactly, but only against the repositories that have a
  token containing its longest separator-free piece.
* Freshness across processes: every worker keeps its own index. The store appends the name of
  every namespace it writes to a change log (``Store.changes_since``) once the file holds the
  change; before each query the index reads what was appended since its last look and re-reads
  just those files, so a write answered to its client is found by the next query in any worker.
* A full scan backs the log up: at the first query, whenever the log was started afresh, and at
  most every :data:`FULL_SCAN_INTERVAL_NS` (for a change a crashed writer never logged). It
  stats the namespaces folder (the store renames a new file into it on every write that can
  change what search finds; new image ids go to a journal without a rename) and, only when
  that changed, each namespace file, re-reading those whose (inode, size, mtime_ns) changed. A
  folder or file time too close to the present to tell a later change from this one (timestamps
  are coarse) is not trusted until it is older than :data:`RACY_NS` (:data:`RACY_COARSE_NS` on
  file systems with whole-second times). A file edited in place while the index runs (not
  something the index does; restoring a backup means stopping it) is seen after the next write.
* A snapshot (``db/search-index.snapshot``) of what a worker built is saved after a scan that read
  many files; a worker that starts later loads it and its first scan re-reads only the namespaces
  whose (inode, size, mtime_ns) changed since, so not every worker parses every file.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import marshal
import os
import re
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .store import ACTIVE, Store
from .store.records import RepositoryRecord

log = logging.getLogger(__name__)

# Anything in ASCII but letters and digits; lower-casing keeps every one of them as it is.
_SEPARATORS = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_LINE = "\n"  # joins the distinct tokens for scanning; a separator, so never inside a token

RACY_NS = 100_000_000              # 0.1 s: well above a kernel tick, the usual time granularity
RACY_COARSE_NS = 3_000_000_000     # whole-second (or 2 s) time stamps: ext3, FAT, some NFS
_SECOND_NS = 1_000_000_000
FULL_SCAN_INTERVAL_NS = 30 * _SECOND_NS  # at 20,000 namespace files a full scan takes ~50-70 ms


def tokens(text: str) -> set[str]:
    """The distinct separator-free runs of ``text``."""
    return {token for token in _SEPARATORS.split(text) if token}


EXACT, PREFIX, SUBSTRING, DESCRIPTION = range(4)


def rank(full: str, needle: str) -> int:
    """How well ``needle`` matches repository ``full`` (``ns/repo``); lower is better.

    The name is the repository part or the whole ``ns/repo``: ``app`` matches ``alice/app``
    exactly, ``ali`` is a prefix of it, ``ce/a`` a substring; anything else matched the description.
    """
    repository = full.partition("/")[2]
    if needle in (full, repository):
        return EXACT
    if full.startswith(needle) or repository.startswith(needle):
        return PREFIX
    if needle in full:
        return SUBSTRING
    return DESCRIPTION


def _racy(mtime_ns: int, now_ns: int) -> bool:
    """True when a change after ``now_ns`` could still carry the time stamp ``mtime_ns``."""
    window = RACY_COARSE_NS if mtime_ns % _SECOND_NS == 0 else RACY_NS
    return now_ns - mtime_ns <= window


# A scan that read this many namespace files (a first build, mostly) saves the index to the
# snapshot, which later workers and restarts load instead of parsing every file again.
SNAPSHOT_AFTER_LOADS = 500
SNAPSHOT_NAME = "search-index.snapshot"
_SNAPSHOT_TEMP = ".search-index-"
_SNAPSHOT_FORMAT = f"search-index 1 {sys.byteorder} {array('I').itemsize}"

# After this many dropped entries (and more than there are live ones) the numbers are given out
# afresh; until then a dropped entry costs its slot and its numbers in the postings.
COMPACT_AFTER_DROPS = 4096


@dataclass(slots=True)
class _Namespace:
    version: tuple[int, int, int]
    racy: bool
    ids: array[int] = field(default_factory=lambda: array("I"))  # its entries' numbers


class SearchIndex:
    """Substring search over active repositories, answered from memory (thread-safe).

    Entries are numbered and kept in parallel lists (name, description, visibility), and each
    token's postings are an array of numbers: no object per repository and no set per token, so
    100,000 repositories cost about 20 MB instead of 70 (bench/README.md, "Flat memory"). A
    re-read namespace keeps the numbers of its unchanged repositories (a push changes no
    posting); a changed or removed one leaves its number behind as a gap, skipped by queries,
    until :data:`COMPACT_AFTER_DROPS` of them are renumbered away.
    """

    def __init__(self, store: Store, clock: Callable[[], int] = time.time_ns,
                 snapshot: Path | None = None) -> None:
        self._store = store
        self._clock = clock
        self._snapshot = snapshot  # where the index is saved for other workers and restarts
        self._restorable = snapshot is not None
        self._lock = threading.Lock()
        self._folder: tuple[int, int] | None = None
        self._folder_trusted = False
        self._position: tuple[int, int] | None = None  # how far the change log was read
        self._scanned_at = 0
        self._namespaces: dict[str, _Namespace] = {}
        self._names: list[str | None] = []  # number -> "ns/repo" (what results show); None: dropped
        # number -> description as stored, in UTF-8: a bytes object costs 16 bytes less than a str,
        # and encoding copies it out of the parse it came from (which would otherwise stay pinned)
        self._descriptions: list[bytes] = []
        self._public = bytearray()          # number -> 1 if public when read (others asked at query time)
        self._dropped = 0
        self._postings: dict[str, array[int]] = {}  # token -> numbers (dropped ones included)
        self._vocabulary: str | None = None  # "\n"-joined distinct tokens, rebuilt when they change

    # -- queries -------------------------------------------------------------------------------
    def search(self, needle: str, offset: int, limit: int,
               visible: Callable[[str, bool], bool] | None = None,
               recency: Mapping[str, float] | None = None) -> tuple[int, list[tuple[str, str]]]:
        """``needle`` (already stripped and lower-cased) -> (number of matches, the page).

        ``visible(full name, public)`` filters the matches before they are counted (what the
        caller may not read is not even counted). The page holds (name, description) of the
        matches ``offset`` to ``offset + limit``, ranked: exact name, then name prefix, then name
        substring, then description only (:func:`rank`); within a rank the most recently pulled
        or pushed first (``recency``: ``ns/repo`` -> a time stamp, missing = never), then by name.
        """
        with self._lock:
            self._refresh()
            matches = self._matches(needle)
            if visible is not None:
                names, public = self._names, self._public
                matches = array("I", (number for number in matches
                                       if visible(names[number] or "", public[number] == 1)))
            return len(matches), self._page(matches, offset, limit, needle, recency or {})

    def __len__(self) -> int:
        """How many repositories the index holds (as of the last query)."""
        return len(self._names) - self._dropped

    def _matches(self, needle: str) -> array[int]:
        # Numbers in arrays, not lists: a query matching 100,000 repositories would otherwise
        # hold 100,000 int objects at once, a peak of the small-object heap that CPython keeps
        # (bench/README.md, "Why a worker passed 100 MiB").
        names = self._names
        if not needle:
            return array("I", (number for number, name in enumerate(names) if name is not None))
        pieces = [piece for piece in _SEPARATORS.split(needle) if piece]
        if not pieces:  # only separators ("-", "/", " "): no token narrows it down
            return array("I", (number for number, name in enumerate(names)
                               if name is not None and self._contains(number, needle)))
        candidates = self._with_token_containing(max(pieces, key=len))
        if len(pieces) == 1 and pieces[0] == needle:
            return candidates  # inside a token: every candidate matches
        return array("I", (number for number in candidates if self._contains(number, needle)))

    def _contains(self, number: int, needle: str) -> bool:
        # Descriptions are lower-cased here rather than kept twice: only queries with separators get here.
        name = self._names[number]
        return name is not None and (needle in name or needle in self._descriptions[number].decode().lower())

    def _with_token_containing(self, piece: str) -> array[int]:
        """The live entries holding a token that contains ``piece``, each once."""
        holding = self._tokens_containing(piece)
        names = self._names
        if len(holding) == 1:  # one token's postings hold each number once
            return array("I", (number for number in self._postings[holding[0]] if names[number] is not None))
        seen = bytearray(len(names))
        found: array[int] = array("I")
        for token in holding:
            for number in self._postings[token]:
                if not seen[number]:
                    seen[number] = 1
                    if names[number] is not None:
                        found.append(number)
        return found

    def _tokens_containing(self, piece: str) -> list[str]:
        if self._vocabulary is None:
            self._vocabulary = _LINE + _LINE.join(self._postings) + _LINE
        vocabulary = self._vocabulary
        found = []
        position = vocabulary.find(piece)
        while position != -1:
            start = vocabulary.rfind(_LINE, 0, position) + 1
            end = vocabulary.find(_LINE, position)
            found.append(vocabulary[start:end])
            position = vocabulary.find(piece, end)
        return found

    def _page(self, numbers: array[int], offset: int, limit: int, needle: str,
              recency: Mapping[str, float]) -> list[tuple[str, str]]:
        names, descriptions = self._names, self._descriptions

        def order(number: int) -> tuple[int, float, str]:
            name = names[number] or ""
            return rank(name, needle), -recency.get(name, 0.0), name

        wanted = offset + limit
        if wanted * 8 < len(numbers):  # a first page of many matches: no need to sort them all
            ordered = heapq.nsmallest(wanted, numbers, key=order)
        else:
            ordered = sorted(numbers, key=order)
        return [(names[number] or "", descriptions[number].decode()) for number in ordered[offset:wanted]]

    # -- freshness -------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Re-read what changed since the last query, in this or any other process."""
        now = self._clock()
        if self._position is not None and now - self._scanned_at < FULL_SCAN_INTERVAL_NS:
            changes = self._store.changes_since(self._position)
            if changes is not None:
                self._position, namespaces = changes
                for namespace in namespaces:
                    version = self._store.namespace_version(namespace)
                    if version is None:
                        self._forget(namespace)
                    else:
                        self._load(namespace, version, now)
                self._compact_if_worthwhile()
                return
        if self._restorable:
            self._restorable = False
            self._restore()
        # Where the log ends, taken before the scan: what is appended meanwhile is read next time.
        self._position = self._store.changes_position()
        self._scanned_at = now
        loaded = self._scan(now)
        self._compact_if_worthwhile()
        if loaded >= SNAPSHOT_AFTER_LOADS:
            self._save()

    def _scan(self, now: int) -> int:
        """Re-read the namespaces whose files changed; returns how many were read."""
        folder = self._store.namespaces_version()
        if folder is not None and folder == self._folder and self._folder_trusted:
            return 0
        # Stat the folder before the files: a write that lands during this scan changes the folder
        # after the version kept here, so the next query scans again.
        versions = self._store.namespace_versions()
        for namespace in [ns for ns in self._namespaces if ns not in versions]:
            self._forget(namespace)
        loaded = 0
        for namespace, version in versions.items():
            known = self._namespaces.get(namespace)
            if known is None or known.version != version or known.racy:
                self._load(namespace, version, now)
                loaded += 1
        self._folder = folder
        self._folder_trusted = folder is not None and not _racy(folder[1], now)
        return loaded

    def _load(self, namespace: str, version: tuple[int, int, int], now: int) -> None:
        # The version was taken before this read, so the records are at least that new; a write
        # in between only causes one more read at the next query. Everything is read before the
        # old entries change, so a damaged file (an exception here) leaves the index as it was.
        fresh = [_entry(record) for record in self._store.iter_repositories(namespace, retain=False)
                 if record.get("state") == ACTIVE]
        known = self._namespaces.get(namespace)
        names, descriptions = self._names, self._descriptions
        previous = {names[number]: number for number in known.ids} if known is not None else {}
        numbers: array[int] = array("I")
        for owner, repository, text, public in fresh:
            # Made now that the file's parse is gone, so what is kept does not sit among its holes;
            # interned, so the pull/push counts' ranking keys (index.activity) are the same strings.
            name, description = sys.intern(f"{owner}/{repository}"), text.encode()
            number = previous.pop(name, None)
            if number is not None and descriptions[number] == description:
                self._public[number] = public  # a push or a visibility change: no posting changes
            else:
                if number is not None:
                    self._drop(number)
                number = self._add(name, description, text, public)
            numbers.append(number)
        for number in previous.values():
            self._drop(number)
        self._namespaces[namespace] = _Namespace(version, _racy(version[2], now), numbers)

    def _forget(self, namespace: str) -> None:
        known = self._namespaces.pop(namespace, None)
        if known is not None:
            for number in known.ids:
                self._drop(number)

    def _add(self, name: str, description: bytes, text: str, public: bool) -> int:
        """A new entry; ``text`` is ``description`` decoded."""
        number = len(self._names)
        self._names.append(name)
        self._descriptions.append(description)
        self._public.append(public)
        postings = self._postings
        for token in tokens(name) | tokens(text.lower()):
            holders = postings.get(token)
            if holders is None:
                postings[token] = array("I", (number,))
                self._vocabulary = None
            else:
                holders.append(number)
        return number

    def _drop(self, number: int) -> None:
        self._names[number] = None
        self._descriptions[number] = b""
        self._public[number] = 0
        self._dropped += 1

    # -- the snapshot shared with other workers ---------------------------------------------------
    def _save(self) -> None:
        """Write what the index holds to the snapshot (a cache: replaced whole, never fsynced).

        A worker that starts later loads it instead of parsing every namespace file, then re-reads
        the namespaces whose files changed since (the versions are in the snapshot)."""
        if self._snapshot is None:
            return
        blob = bytearray()
        postings: dict[str, tuple[int, int]] = {}
        for token, numbers in self._postings.items():
            postings[token] = (len(blob), len(numbers))
            blob += numbers.tobytes()
        namespaces = {namespace: (known.version, known.racy, known.ids.tobytes())
                      for namespace, known in self._namespaces.items()}
        payload = marshal.dumps((_SNAPSHOT_FORMAT, self._names, self._descriptions, bytes(self._public),
                                 self._dropped, postings, bytes(blob), namespaces))
        try:
            fd, temp = tempfile.mkstemp(prefix=_SNAPSHOT_TEMP, dir=self._snapshot.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                os.replace(temp, self._snapshot)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            log.warning("could not save the search index for other workers: %s", exc)

    def _restore(self) -> None:
        """Start from the snapshot, if there is a usable one (anything odd: start empty)."""
        assert self._snapshot is not None
        for leftover in self._snapshot.parent.glob(_SNAPSHOT_TEMP + "*"):  # a writer killed mid-write
            with contextlib.suppress(OSError):
                if time.time() - leftover.stat().st_mtime > 60:
                    leftover.unlink()
        try:
            raw = self._snapshot.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("could not read the search index snapshot: %s", exc)
            return
        try:
            restored = _restored(marshal.loads(raw))
        except (ValueError, TypeError, EOFError, KeyError, IndexError, OverflowError) as exc:
            log.warning("ignoring a damaged search index snapshot (%s); building it again", exc)
            return
        (self._names, self._descriptions, self._public, self._dropped, self._postings,
         self._namespaces) = restored
        self._vocabulary = None

    def _compact_if_worthwhile(self) -> None:
        """Number the entries afresh once the gaps outnumber them (and :data:`COMPACT_AFTER_DROPS`):
        their slots and postings are then given back, and tokens nobody holds leave the vocabulary."""
        if self._dropped < max(COMPACT_AFTER_DROPS, len(self)):
            return
        names, descriptions, public = self._names, self._descriptions, self._public
        self._names, self._descriptions, self._public = [], [], bytearray()
        self._postings, self._vocabulary, self._dropped = {}, None, 0
        for known in self._namespaces.values():
            known.ids = array("I", (self._add(names[number] or "", descriptions[number],
                                              descriptions[number].decode(), public[number] == 1)
                                    for number in known.ids))


def _restored(loaded: object) -> tuple[list[str | None], list[bytes], bytearray, int,
                                       dict[str, array[int]], dict[str, _Namespace]]:
    """The index's parts from an unmarshalled snapshot, checked; ValueError when they do not fit."""
    if not isinstance(loaded, tuple) or len(loaded) != 8 or loaded[0] != _SNAPSHOT_FORMAT:
        raise ValueError("not a snapshot of this version")
    _, names, descriptions, public, dropped, where, blob, namespaces = loaded
    if not (isinstance(names, list) and isinstance(descriptions, list) and isinstance(public, bytes)
            and isinstance(dropped, int) and isinstance(where, dict) and isinstance(blob, bytes)
            and isinstance(namespaces, dict) and len(names) == len(descriptions) == len(public)):
        raise ValueError("parts of the wrong shape")
    if not all(isinstance(name, str) or name is None for name in names) or \
            not all(isinstance(description, bytes) for description in descriptions):
        raise ValueError("entries of the wrong type")
    count = len(names)
    view = memoryview(blob)
    postings: dict[str, array[int]] = {}
    for token, (start, length) in where.items():
        numbers = array("I")
        numbers.frombytes(view[start:start + length * numbers.itemsize])
        if len(numbers) != length or (numbers and max(numbers) >= count):
            raise ValueError(f"postings of {token!r} out of range")
        postings[token] = numbers
    kept: dict[str, _Namespace] = {}
    for namespace, (version, racy, ids) in namespaces.items():
        numbers = array("I")
        numbers.frombytes(ids)
        if numbers and max(numbers) >= count:
            raise ValueError(f"entries of {namespace!r} out of range")
        inode, size, mtime = version  # three ints, or the snapshot is not ours
        kept[namespace] = _Namespace((int(inode), int(size), int(mtime)), bool(racy), numbers)
    return names, descriptions, bytearray(public), dropped, postings, kept


def _entry(record: RepositoryRecord) -> tuple[str, str, str, bool]:
    """(namespace, name, description, public) of an active repository's record."""
    # Results name library repositories "library/<name>" too, as docker-registry 0.9 did.
    return (record["namespace"], record["name"], record.get("description") or "",
            record.get("visibility", "public") == "public")
