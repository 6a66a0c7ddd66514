"""The in-memory search index: the same answers as a scan of every record, and fresh across workers."""
from __future__ import annotations

import math
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from index import create_app
from index.search_index import FULL_SCAN_INTERVAL_NS, RACY_NS, SearchIndex, tokens
from index.services import EXTENSION_KEY
from index.store import ACTIVE, Store, changes

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["nginx", "redis", "web", "api", "app", "Proxy", "data", "db", "x", "node-js", "go.lang"]
ODD_DESCRIPTIONS = ["", "Line one\nline two", "Ünïcödé İstanbul ǅ café", "tabs\tand  spaces",
                    "NUL \x00 inside", "dots...and--dashes", "MiXeD CaSe Nginx", "emoji 🐳 whale"]
NEEDLES = ["", "nginx", "NGINX", "ngi", "x", "web/", "/", "-", ".", " ", "a", "proxy", "node-js",
           "go.lang", "data/db", "s/a", "\n", "one\nline", "\x00", "ünï", "i̇stanbul", "ǆ", "café",
           "  spaces", "🐳", "nothing-here", "library", "lib", "e", "ns1/", "/web", "dots...and",
           "d--d", "t", "1"]


def scan(store: Store, query: str, page: int = 1, page_size: int = 25) -> dict:
    """The search as it was before the index: every record, every query (the reference), ranked
    as issue 13 asks: exact name, name prefix, name substring, description (no pulls here)."""
    needle = query.strip().lower()
    matches = []
    for record in store.iter_repositories():
        if record["state"] != ACTIVE:
            continue
        name = f"{record['namespace']}/{record['name']}"   # library ones as library/<name> too
        description = record.get("description") or ""
        full = f"{record['namespace']}/{record['name']}"
        if needle in full or needle in description.lower():
            if needle in (full, record["name"]):
                kind = 0
            elif full.startswith(needle) or record["name"].startswith(needle):
                kind = 1
            else:
                kind = 2 if needle in full else 3
            matches.append((kind, name, description))
    matches = [(name, description) for _, name, description in sorted(matches)]
    start = (page - 1) * page_size
    return {"num_results": len(matches), "num_pages": max(1, math.ceil(len(matches) / page_size)),
            "results": matches[start:start + page_size]}


def answer(client, query: str, page: int = 1, page_size: int = 25) -> dict:
    response = client.get("/v1/search", query_string={"q": query, "page": page, "n": page_size})
    assert response.status_code == 200
    body = response.get_json()
    return {"num_results": body["num_results"], "num_pages": body["num_pages"],
            "results": [(result["name"], result["description"]) for result in body["results"]]}


def fill(store: Store, rng: random.Random, namespaces: int = 12, per_namespace: int = 9) -> None:
    for n in range(namespaces):
        namespace = "library" if n == 0 else f"ns{n}"
        for r in range(per_namespace):
            name = f"{rng.choice(WORDS).lower().replace('.', '-')}{r}" if r % 3 else f"{rng.choice(WORDS).lower()}-{r}"
            store.announce_repository(namespace, name, [{"id": f"{r:064x}"}], owner=namespace)
            text = rng.choice(ODD_DESCRIPTIONS + [f"{rng.choice(WORDS)} {rng.choice(WORDS)} image"] * 4)
            if text:
                store.set_description(namespace, name, text)
            if rng.random() < 0.1:
                store.mark_deleting(namespace, name)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One filled data dir for the tests that only read (filling costs a durable write per step)."""
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path_factory.mktemp("search") / "data",
                      "SECRET_KEY": "test-secret", "BCRYPT_ROUNDS": 4})
    store = app.extensions[EXTENSION_KEY].store
    fill(store, random.Random(7))
    return app.test_client(), store


@pytest.fixture
def filled(store):
    fill(store, random.Random(5), namespaces=4, per_namespace=4)
    return store


def test_tokens_are_separator_free_runs():
    assert tokens("ns1/node-js") == {"ns1", "node", "js"}
    assert tokens("Ünï café 🐳\n") == {"Ünï", "café", "🐳"}
    assert tokens("--/..") == set()


@pytest.mark.parametrize("needle", NEEDLES)
def test_every_query_answers_as_the_full_scan(shared, needle):
    client, store = shared
    assert answer(client, needle) == scan(store, needle)


def test_pages_and_page_sizes_answer_as_the_full_scan(shared):
    client, store = shared
    for needle in ["", "e", "nginx", "-"]:
        for page_size in (1, 3, 25, 100):
            total_pages = scan(store, needle, 1, page_size)["num_pages"]
            for page in sorted({1, 2, total_pages, total_pages + 1}):
                assert answer(client, needle, page, page_size) == scan(store, needle, page, page_size)


@pytest.mark.slow
def test_random_queries_answer_as_the_full_scan(shared):
    client, store = shared
    rng = random.Random(11)
    texts = [f"{r['namespace']}/{r['name']} {r.get('description') or ''}" for r in store.iter_repositories()]
    for _ in range(300):
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        needle = text[start:start + rng.randint(1, 6)]
        assert answer(client, needle) == scan(store, needle), repr(needle)


def test_a_write_by_another_worker_is_seen_by_the_next_query(client, filled, settings):
    before = answer(client, "zebra")
    assert before["num_results"] == 0
    other = Store(Path(settings["DATA_DIR"]))  # its own caches, as in another gunicorn worker
    other.announce_repository("ns3", "zebra", [{"id": "a" * 64}], owner="ns3")
    assert answer(client, "zebra")["results"] == [("ns3/zebra", "")]
    other.set_description("ns3", "zebra", "Striped")
    assert answer(client, "striped")["results"] == [("ns3/zebra", "Striped")]
    other.announce_repository("newcomer", "zebra", [{"id": "b" * 64}], owner="newcomer")
    assert answer(client, "zebra")["num_results"] == 2
    other.mark_deleting("ns3", "zebra")
    assert answer(client, "zebra")["results"] == [("newcomer/zebra", "")]
    other.delete_repository("newcomer", "zebra")
    assert answer(client, "zebra")["num_results"] == 0
    assert answer(client, "e") == scan(filled, "e")


@pytest.mark.live
def test_a_write_by_another_process_is_seen(client, filled, settings):
    assert answer(client, "giraffe")["num_results"] == 0
    script = ("import sys; from pathlib import Path; from index.store import Store; "
              "s = Store(Path(sys.argv[1])); "
              "s.announce_repository('ns5', 'giraffe', [{'id': 'c' * 64}], owner='ns5')")
    subprocess.run([sys.executable, "-c", script, str(settings["DATA_DIR"])], cwd=ROOT, check=True, timeout=60)
    assert answer(client, "giraffe")["results"] == [("ns5/giraffe", "")]


class CountingStore:
    """A Store whose change detection can be watched and held still."""

    def __init__(self, store: Store, *, without_log: bool = False) -> None:
        self.store = store
        self.scans = 0
        self.reads: list[str] = []
        self.frozen_folder: tuple[int, int] | None = None
        self.without_log = without_log  # as if no writer ever kept a change log: full scans only

    def namespaces_version(self):
        return self.frozen_folder or self.store.namespaces_version()

    def namespace_versions(self):
        self.scans += 1
        return self.store.namespace_versions()

    def namespace_version(self, namespace):
        return self.store.namespace_version(namespace)

    def changes_position(self):
        return None if self.without_log else self.store.changes_position()

    def changes_since(self, position):
        return None if self.without_log else self.store.changes_since(position)

    def iter_repositories(self, namespace=None, *, retain=True):
        self.reads.append(namespace)
        return self.store.iter_repositories(namespace, retain=retain)


def test_an_unchanged_folder_with_an_old_time_is_not_scanned_again(filled):
    watched = CountingStore(filled)
    folder_time = filled.namespaces_version()[1]
    index = SearchIndex(watched, clock=lambda: folder_time + 10 * RACY_NS)
    index.search("nginx", 0, 25)
    index.search("web", 0, 25)
    assert watched.scans == 1


def test_a_change_within_the_same_time_stamp_is_still_seen(filled):
    # Coarse time stamps: a second write in the same tick leaves the folder's time as it was. While
    # that time is recent, every full scan checks the files, so the second write is not missed.
    watched = CountingStore(filled, without_log=True)
    watched.frozen_folder = filled.namespaces_version()
    index = SearchIndex(watched, clock=lambda: watched.frozen_folder[1] + RACY_NS // 2)
    assert index.search("okapi", 0, 25)[0] == 0
    filled.announce_repository("ns2", "okapi", [{"id": "d" * 64}], owner="ns2")
    assert index.search("okapi", 0, 25) == (1, [("ns2/okapi", "")])
    assert watched.scans == 2


def test_an_empty_data_dir_has_no_results(client):
    assert answer(client, "") == {"num_results": 0, "num_pages": 1, "results": []}


def test_a_damaged_namespace_file_is_a_500_and_the_rest_of_the_index_survives(client, filled, settings):
    assert answer(client, "zebra")["num_results"] == 0
    other = Store(Path(settings["DATA_DIR"]))
    other.announce_repository("ns1", "zebra", [{"id": "e" * 64}], owner="ns1")
    assert answer(client, "zebra")["num_results"] == 1
    damaged = Path(settings["DATA_DIR"]) / "db" / "namespaces" / "ns1.json"
    damaged.write_text('{"repositories": {')
    other.changes.note("ns1")  # what a writer does after renaming a file into place
    response = client.get("/v1/search", query_string={"q": "zebra"})
    assert response.status_code == 500
    assert "damaged" in response.get_json()["error"]
    other.announce_repository("ns2", "zebra", [{"id": "f" * 64}], owner="ns2")
    damaged.unlink()
    other.changes.note("ns1")
    assert answer(client, "zebra")["results"] == [("ns2/zebra", "")]


def test_store_versions_change_with_every_write(store):
    assert store.namespace_versions() == {}  # the store creates the (empty) folder when it opens
    store.announce_repository("ns1", "app", [{"id": "a" * 64}], owner="ns1")
    files = store.namespace_versions()
    assert store.namespaces_version() is not None
    assert set(files) == {"ns1"}  # lock files are not namespaces
    # The folder's time may not move within one clock tick (the index allows for that); the
    # file's inode always does, since each write renames a new file over the old one.
    store.set_description("ns1", "app", "x")
    assert store.namespace_versions()["ns1"] != files["ns1"]


def test_writes_in_another_process_are_read_from_the_change_log_one_file_each(filled):
    """After the first scan, a query re-reads only the namespaces written since: no stat of every file."""
    filled.announce_repository("ns1", "plain", [{"id": "c" * 64}], owner="ns1")
    watched = CountingStore(filled)
    index = SearchIndex(watched)
    assert index.search("okapi", 0, 25)[0] == 0
    assert watched.scans == 1
    other = Store(filled.root)  # another worker
    other.announce_repository("ns2", "okapi", [{"id": "d" * 64}], owner="ns2")
    other.set_description("ns1", "plain", "an okapi server")
    watched.reads.clear()
    # ranked: the exact name "okapi" before a description match
    assert index.search("okapi", 0, 25) == (2, [("ns2/okapi", ""), ("ns1/plain", "an okapi server")])
    assert sorted(watched.reads) == ["ns1", "ns2"] and watched.scans == 1
    other.mark_deleting("ns2", "okapi")
    assert index.search("okapi", 0, 25) == (1, [("ns1/plain", "an okapi server")])
    watched.reads.clear()
    index.search("okapi", 0, 25)  # nothing written since: nothing read
    assert watched.reads == [] and watched.scans == 1


def test_a_log_started_afresh_means_one_full_scan(filled, monkeypatch):
    monkeypatch.setattr(changes, "CHANGES_MAX_BYTES", 64)
    watched = CountingStore(filled)
    index = SearchIndex(watched)
    index.search("", 0, 25)
    other = Store(filled.root)
    for n in range(20):  # ~8 bytes a line: the log is removed and started again a few times
        other.announce_repository("ns3", f"repo{n}", [{"id": f"{n:064x}"}], owner="ns3")
        assert index.search("repo", 0, 100)[0] == n + 1
    assert 1 < watched.scans < 20


def test_a_change_nobody_logged_is_found_by_the_next_full_scan(filled):
    """A writer killed between its rename and its log line: the periodic full scan finds the change."""
    now = {"t": time.time_ns()}
    index = SearchIndex(filled, clock=lambda: now["t"])
    assert index.search("okapi", 0, 25)[0] == 0
    unlogged = Store(filled.root)
    unlogged.changes.note = lambda namespace: None
    unlogged.announce_repository("ns2", "okapi", [{"id": "d" * 64}], owner="ns2")
    assert index.search("okapi", 0, 25)[0] == 0  # not logged: not seen yet
    now["t"] += FULL_SCAN_INTERVAL_NS
    assert index.search("okapi", 0, 25) == (1, [("ns2/okapi", "")])


def test_the_change_log_holds_only_what_was_written(tmp_path):
    store = Store(tmp_path)
    store.open()
    start = store.changes_position()
    store.announce_repository("alice", "app", [{"id": "a" * 64}], owner="alice")
    store.announce_repository("alice", "app", [{"id": "a" * 64}], owner="alice")  # changes nothing
    store.create_user("bob", "hash", "bob@example.com")  # not a namespace file
    position = store.changes_position()
    assert store.changes_since((position[0], 0)) == (position, {"alice"})
    assert store.changes_since(position) == (position, set())  # nothing since
    assert store.changes_since((position[0] + 1, 0)) is None  # another log: read everything
    assert store.changes_since((position[0], position[1] + 1)) is None  # shorter than we read
    assert start is None and position[1] == len(b"alice\n")
    with open(store.changes.path, "ab") as log:
        log.write(b"../users\n\x00x\n.hidden\nbob\npart")  # odd lines, and one being written
    assert store.changes_since(position) == ((position[0], position[1] + len(b"../users\n\x00x\n.hidden\nbob\n")),
                                             {"bob"})


def test_building_the_index_keeps_no_file_parse_in_the_store(tmp_path):
    # At 100,000 repositories the kept parses were 3.5 times the data in each worker.
    store = Store(tmp_path / "data")
    store.open()
    for number in range(5):
        store.announce_repository(f"owner{number}", "app", [], owner=f"owner{number}")
    fresh = Store(tmp_path / "data")
    fresh.open()  # checks every file, keeps none
    index = SearchIndex(fresh)
    assert index.search("app", 0, 10)[0] == 5
    kept = [path for path, datafile in fresh.tables._files.items() if datafile._cache is not None]
    assert kept == []


def test_a_query_matching_many_holds_no_object_per_match(tmp_path):
    # The matches are arrays of numbers: a set and lists of int objects for a query matching
    # 100,000 repositories were a peak of small objects that CPython keeps (bench/README.md).
    store = Store(tmp_path / "data")
    store.open()
    index = SearchIndex(store)
    assert index.search("app", 0, 25)[0] == 0  # the first query scans the (empty) data dir
    count = 20_000
    for number in range(count):  # entries as a scan adds them, without writing 20,000 files
        index._add(sys.intern(f"ns{number // 10}/app{number % 50}"), b"an app", "an app", True)
    visible = lambda name, public: public  # noqa: E731
    tracemalloc.start()
    try:
        total, page = index.search("app", 0, 25, visible, {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == count and len(page) == 25
    assert peak < 16 * count  # an int object alone is 28 bytes
