"""A worker keeps a bounded number of file parses: the most recently used, up to a byte budget."""
from __future__ import annotations

import os

from index.store import Store
from index.store.files import DataFile, KeptParses

NAMESPACES = 40


def kept(store: Store) -> list[str]:
    return sorted(path.stem for path, datafile in store.tables._files.items() if datafile._cache is not None)


def sizes(store: Store) -> dict[str, int]:
    return {path.stem: os.stat(path).st_size for path in store.tables._files}


def fill(root) -> Store:
    store = Store(root)
    store.open()
    for number in range(NAMESPACES):
        store.announce_repository(f"owner{number:02d}", "app", [{"id": f"{number:064x}"}], owner=f"owner{number:02d}")
        store.set_description(f"owner{number:02d}", "app", f"description {number} " * 20)
    return store


def test_reads_of_every_namespace_keep_only_the_budget(tmp_path):
    fill(tmp_path / "data")
    store = Store(tmp_path / "data")
    store.open()
    one_file = os.stat(tmp_path / "data" / "db" / "namespaces" / f"owner{NAMESPACES - 1}.json").st_size
    store.tables.kept.limit = 5 * one_file  # the last five files (all of one size)
    for number in range(NAMESPACES):
        assert store.get_repository(f"owner{number:02d}", "app")["description"].startswith(f"description {number} ")
    assert kept(store) == [f"owner{number:02d}" for number in range(NAMESPACES - 5, NAMESPACES)]
    assert store.tables.kept.kept_bytes() == sum(sizes(store)[name] for name in kept(store))
    # A dropped parse is read again, and correctly, when it is needed.
    assert store.get_repository("owner00", "app")["description"].startswith("description 0 ")
    assert "owner00" in kept(store) and f"owner{NAMESPACES - 5:02d}" not in kept(store)


def test_a_read_keeps_a_file_in_front(tmp_path):
    fill(tmp_path / "data")
    store = Store(tmp_path / "data")
    store.open()
    one_file = os.stat(tmp_path / "data" / "db" / "namespaces" / "owner00.json").st_size
    store.tables.kept.limit = 3 * one_file
    for number in range(6):
        store.get_repository("owner00", "app")  # used between every other read: stays
        store.get_repository(f"owner{number + 1:02d}", "app")
    assert kept(store) == ["owner00", "owner05", "owner06"]


def test_writes_count_and_other_workers_writes_are_still_seen(tmp_path):
    store = fill(tmp_path / "data")
    store.set_description("owner01", "app", "written here")
    one_file = os.stat(tmp_path / "data" / "db" / "namespaces" / "owner01.json").st_size
    store.tables.kept.limit = 2 * one_file + one_file // 2
    store.set_description("owner02", "app", "written here")
    store.set_description("owner03", "app", "written here")
    assert kept(store) == ["owner02", "owner03"]
    other = Store(tmp_path / "data")
    other.set_description("owner03", "app", "written by another worker")
    assert store.get_repository("owner03", "app")["description"] == "written by another worker"
    assert store.get_repository("owner01", "app")["description"] == "written here"


def test_the_latest_file_is_kept_even_beyond_the_budget(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"table": {"key": "' + "x" * 10_000 + '"}}')
    budget = KeptParses(limit=100)
    datafile = DataFile(path, budget)
    first = datafile.read_shared()
    assert datafile.read_shared() is first  # kept: not parsed again
    small = tmp_path / "small.json"
    small.write_text('{"table": {}}')
    DataFile(small, budget).read_shared()
    assert datafile._cache is None and budget.kept_bytes() == small.stat().st_size


def test_a_pass_over_every_namespace_for_search_keeps_no_datafile(tmp_path):
    fill(tmp_path / "data")
    store = Store(tmp_path / "data")
    store.open()
    assert sum(1 for _ in store.iter_repositories(retain=False)) == NAMESPACES
    assert store.tables._files == {}
