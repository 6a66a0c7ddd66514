"""The search index's snapshot: a worker that starts after another built the index loads it
instead of parsing every namespace file, then re-reads only what changed since."""
from __future__ import annotations

import random
import time

import pytest

from index import search_index
from index.search_index import SearchIndex
from index.store import Store
from index.store.access import AccessStore
from tests.test_search_index import NEEDLES, CountingStore, fill, scan


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(search_index, "SNAPSHOT_AFTER_LOADS", 1)
    store = Store(tmp_path / "data")
    store.open()
    fill(store, random.Random(8), namespaces=6, per_namespace=5)
    return store, tmp_path / "data" / "db" / search_index.SNAPSHOT_NAME


def built(store: Store, snapshot) -> SearchIndex:
    """An index that builds itself and saves the snapshot, with a clock late enough that no
    file's time stamp is too recent to trust (those would be read again, as they must)."""
    index = SearchIndex(store, clock=lambda: time.time_ns() + 10 * search_index.RACY_COARSE_NS,
                        snapshot=snapshot)
    index.search("", 0, 1)
    return index


def answers(index: SearchIndex, store: Store) -> None:
    for needle in NEEDLES:
        expected = scan(store, needle, 1, 100)
        assert index.search(needle.strip().lower(), 0, 100) == (expected["num_results"], expected["results"]), \
            repr(needle)


def test_a_later_worker_loads_the_snapshot_and_reads_no_file(data):
    store, snapshot = data
    built(store, snapshot)
    assert snapshot.exists()
    watched = CountingStore(Store(store.root))
    later = SearchIndex(watched, snapshot=snapshot)
    answers(later, store)
    assert watched.reads == []  # every namespace came from the snapshot


def test_what_changed_after_the_snapshot_is_read_again(data):
    store, snapshot = data
    built(store, snapshot)
    other = Store(store.root)
    other.announce_repository("ns2", "okapi", [{"id": "a" * 64}], owner="ns2")
    other.set_description("ns3", next(r["name"] for r in other.iter_repositories("ns3")), "Now an okapi")
    other.delete_repository("ns4", next(r["name"] for r in other.iter_repositories("ns4")))
    watched = CountingStore(Store(store.root))
    later = SearchIndex(watched, snapshot=snapshot)
    answers(later, store)
    assert sorted(watched.reads) == ["ns2", "ns3", "ns4"]


def test_a_private_repository_stays_hidden_after_a_restore(data):
    store, snapshot = data
    record = next(r for r in store.iter_repositories("ns1") if r["state"] == "active")
    AccessStore(store).set_visibility("ns1", record["name"], "private")
    built(store, snapshot)
    later = SearchIndex(Store(store.root), snapshot=snapshot)
    total, found = later.search("", 0, 1000, visible=lambda name, public: public)
    assert f"ns1/{record['name']}" not in [name for name, _ in found]
    assert total == scan(store, "")["num_results"] - 1


@pytest.mark.parametrize("damage", [b"", b"not marshal", "truncated", "other version"])
def test_a_damaged_snapshot_is_ignored_and_written_again(data, damage):
    store, snapshot = data
    built(store, snapshot)
    good = snapshot.read_bytes()
    if damage == "truncated":
        snapshot.write_bytes(good[:len(good) // 2])
    elif damage == "other version":
        snapshot.write_bytes(good.replace(b"search-index 1", b"search-index 9"))
    else:
        snapshot.write_bytes(damage)
    watched = CountingStore(Store(store.root))
    later = SearchIndex(watched, snapshot=snapshot)
    answers(later, store)
    assert len(watched.reads) == len(store.namespaces())  # built from the files
    assert SearchIndex(Store(store.root), snapshot=snapshot).search("", 0, 1)[0] == scan(store, "")["num_results"]
