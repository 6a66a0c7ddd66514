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
  stats the namespaces folder (the store renames a new file into it on every write) and, only when
  that changed, each namespace file, re-reading those whose (inode, size, mtime_ns) changed. A
  folder or file time too close to the present to tell a later change from this one (timestamps
  are coarse) is not trusted until it is older than :data:`RACY_NS` (:data:`RACY_COARSE_NS` on
  file systems with whole-second times). A file edited in place while the index runs (not
  something the index does; restoring a backup means stopping it) is seen after the next write.
"""
from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .store import ACTIVE, Store
from .store.records import RepositoryRecord

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


@dataclass(frozen=True, slots=True)
class _Entry:
    """One active repository as search sees it."""

    name: str               # what results show: ``ns/repo`` (``library/repo`` too)
    full: str               # ``ns/repo``, what the query is matched against (names are lower-case)
    public: bool            # visibility when read; readers of private ones are asked at query time
    description: str        # as stored, for the result
    description_lower: str

    def matches(self, needle: str) -> bool:
        return needle in self.full or needle in self.description_lower

    def tokens(self) -> set[str]:
        # Recomputed when needed rather than kept: a set per repository costs more memory
        # than the repository's texts.
        return tokens(self.full) | tokens(self.description_lower)


@dataclass
class _Namespace:
    version: tuple[int, int, int]
    racy: bool
    names: list[str] = field(default_factory=list)


class SearchIndex:
    """Substring search over active repositories, answered from memory (thread-safe)."""

    def __init__(self, store: Store, clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._folder: tuple[int, int] | None = None
        self._folder_trusted = False
        self._position: tuple[int, int] | None = None  # how far the change log was read
        self._scanned_at = 0
        self._namespaces: dict[str, _Namespace] = {}
        self._entries: dict[str, _Entry] = {}
        self._postings: dict[str, set[str]] = {}
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
                entries = self._entries
                matches = [name for name in matches if visible(entries[name].full, entries[name].public)]
            return len(matches), self._page(matches, offset, limit, needle, recency or {})

    def _matches(self, needle: str) -> Collection[str]:
        if not needle:
            return self._entries.keys()
        pieces = [piece for piece in _SEPARATORS.split(needle) if piece]
        if not pieces:  # only separators ("-", "/", " "): no token narrows it down
            return [name for name, entry in self._entries.items() if entry.matches(needle)]
        candidates = self._with_token_containing(max(pieces, key=len))
        if len(pieces) == 1 and pieces[0] == needle:
            return candidates  # inside a token: every candidate matches
        return [name for name in candidates if self._entries[name].matches(needle)]

    def _with_token_containing(self, piece: str) -> set[str]:
        found: set[str] = set()
        for token in self._tokens_containing(piece):
            found |= self._postings[token]
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

    def _page(self, matches: Iterable[str], offset: int, limit: int, needle: str,
              recency: Mapping[str, float]) -> list[tuple[str, str]]:
        entries = self._entries

        def order(name: str) -> tuple[int, float, str]:
            entry = entries[name]
            return rank(entry.full, needle), -recency.get(entry.full, 0.0), name

        names = list(matches)
        wanted = offset + limit
        if wanted * 8 < len(names):  # a first page of many matches: no need to sort them all
            ordered = heapq.nsmallest(wanted, names, key=order)
        else:
            ordered = sorted(names, key=order)
        return [(name, entries[name].description) for name in ordered[offset:wanted]]

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
                return
        # Where the log ends, taken before the scan: what is appended meanwhile is read next time.
        self._position = self._store.changes_position()
        self._scanned_at = now
        self._scan(now)

    def _scan(self, now: int) -> None:
        folder = self._store.namespaces_version()
        if folder is not None and folder == self._folder and self._folder_trusted:
            return
        # Stat the folder before the files: a write that lands during this scan changes the folder
        # after the version kept here, so the next query scans again.
        versions = self._store.namespace_versions()
        for namespace in [ns for ns in self._namespaces if ns not in versions]:
            self._forget(namespace)
        for namespace, version in versions.items():
            known = self._namespaces.get(namespace)
            if known is None or known.version != version or known.racy:
                self._load(namespace, version, now)
        self._folder = folder
        self._folder_trusted = folder is not None and not _racy(folder[1], now)

    def _load(self, namespace: str, version: tuple[int, int, int], now: int) -> None:
        # The version was taken before this read, so the records are at least that new; a write
        # in between only causes one more read at the next query. Everything is read before the
        # old entries go, so a damaged file (an exception here) leaves the index as it was.
        entries = [_entry(record) for record in self._store.iter_repositories(namespace, retain=False)
                   if record.get("state") == ACTIVE]
        self._forget(namespace)
        known = _Namespace(version, _racy(version[2], now))
        for entry in entries:
            known.names.append(entry.name)
            self._entries[entry.name] = entry
            for token in entry.tokens():
                holders = self._postings.get(token)
                if holders is None:
                    self._postings[token] = {entry.name}
                    self._vocabulary = None
                else:
                    holders.add(entry.name)
        self._namespaces[namespace] = known

    def _forget(self, namespace: str) -> None:
        known = self._namespaces.pop(namespace, None)
        if known is None:
            return
        for name in known.names:
            entry = self._entries.pop(name, None)
            if entry is None:  # only if two files held the same name (damaged data)
                continue
            for token in entry.tokens():
                holders = self._postings.get(token, set())
                holders.discard(name)
                if not holders and token in self._postings:
                    del self._postings[token]
                    self._vocabulary = None


def _entry(record: RepositoryRecord) -> _Entry:
    namespace, name = record["namespace"], record["name"]
    full = f"{namespace}/{name}"
    description = record.get("description") or ""
    lower = description.lower()
    if lower == description:
        lower = description  # one string, not two equal ones: memory at 100,000 repositories
    # Results name library repositories "library/<name>" too, as docker-registry 0.9 did.
    return _Entry(name=full, full=full, public=record.get("visibility", "public") == "public",
                  description=description, description_lower=lower)
