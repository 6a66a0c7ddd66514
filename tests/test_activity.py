"""Pull/push counts: sharded files, and what a worker keeps of them is derived, never a parse.

Each answer is compared with the same question answered from a full parse of every shard merged
with the pending counts (what the worker kept of the one file before).
"""
from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from index import activity as activity_module
from index import create_app
from index.activity import TABLE, Activity, shard_of
from index.services import EXTENSION_KEY
from index.store import CorruptDataFile, Store
from index.store.files import DataFile


@pytest.fixture
def workers(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    return (Activity(store, flush_seconds=3600, recheck_seconds=0),
            Activity(Store(tmp_path / "data"), flush_seconds=3600, recheck_seconds=0))


def stamp(minutes: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def write_file(activity: Activity, table: dict) -> None:
    """``table`` as the flushed counts: each repository's entry in its shard."""
    for shard, datafile in activity._files.items():
        with datafile.locked():
            datafile.write({TABLE: {repository: stats for repository, stats in table.items()
                                    if shard_of(repository) == shard}})


def stored(activity: Activity) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for path in sorted(activity._folder.glob("*.json")):
        part = json.loads(path.read_text()).get(TABLE, {})
        assert all(shard_of(repository) == path.stem for repository in part)
        table.update(part)
    return table


def reference(activity: Activity) -> dict[str, dict]:
    """Every shard, fully parsed, with this worker's pending counts merged in."""
    merged = {repository: dict(stats) for repository, stats in stored(activity).items()}
    for repository, counts in activity._pending.items():
        entry = merged.setdefault(repository, {})
        for field in ("pulls", "pushes"):
            entry[field] = entry.get(field, 0) + counts.get(field, 0)
        entry.update({k: v for k, v in counts.items() if k not in ("pulls", "pushes")})
    return merged


def filled(activity: Activity, count: int, rng: random.Random) -> dict:
    table = {}
    for number in range(count):
        entry: dict = {"pulls": rng.randrange(50), "pushes": rng.randrange(1, 5)}
        if rng.random() < 0.8:
            entry["last_push"] = stamp(rng.randrange(10_000))
            entry["last_push_by"] = f"user{number % 7}"
        if rng.random() < 0.6:
            entry["last_pull"] = stamp(rng.randrange(10_000))
        table[f"ns{number % 13}/repo{number}"] = entry
    write_file(activity, table)
    return table


def test_counts_of_one_repository_are_found_in_the_file(workers):
    mine, other = workers
    write_file(other, {"malice/app": {"pulls": 9, "pushes": 9},
                       "alice/app": {"pulls": 2, "pushes": 1, "last_push": stamp(1), "last_push_by": "alice"},
                       "alice/app2": {"pulls": 5, "pushes": 0}})
    assert mine.of("alice/app") == {"pulls": 2, "pushes": 1, "last_push": stamp(1), "last_push_by": "alice"}
    assert mine.of("lice/app") == {"pulls": 0, "pushes": 0}
    assert mine.of("nobody/app") == {"pulls": 0, "pushes": 0}
    mine.pulled("alice/app")
    mine.pulled("bob/new")
    assert mine.of("alice/app") == reference(mine)["alice/app"]
    assert mine.of("bob/new") == reference(mine)["bob/new"]
    assert mine.of("alice/app")["pulls"] == 3


def test_recency_and_latest_pushes_answer_as_a_full_parse(workers, monkeypatch):
    monkeypatch.setattr(activity_module, "LATEST_PUSHES_KEPT", 3)  # the home page's fallback runs too
    mine, other = workers
    rng = random.Random(4)
    filled(other, 300, rng)
    for round_ in range(3):
        for _ in range(10):
            repository = f"ns{rng.randrange(13)}/repo{rng.randrange(400)}"
            mine.pushed(repository, "me") if rng.random() < 0.5 else mine.pulled(repository)
        merged = reference(mine)
        expected_recency = {}
        for repository, stats in merged.items():
            latest = max(stats.get("last_pull") or "", stats.get("last_push") or "")
            if latest:
                expected_recency[repository] = datetime.fromisoformat(latest).timestamp()
        assert dict(mine.recency()) == expected_recency
        expected_pushes = sorted(((stats["last_push"], repository) for repository, stats in merged.items()
                                  if stats.get("last_push")), reverse=True)
        assert list(mine.latest_pushes()) == expected_pushes
        assert list(mine.latest_pushes())[:3] == expected_pushes[:3]
        if round_ == 1:
            mine.flush()  # the pending counts go into the file; the view is worked out again
            assert mine._pending == {}


def test_the_file_is_parsed_once_per_version_and_not_kept(workers, monkeypatch):
    mine, other = workers
    filled(other, 50, random.Random(2))
    parses = []
    read = DataFile.read_if_changed

    def counted(self, since):
        found = read(self, since)
        parses.append(found is not None)
        return found
    monkeypatch.setattr(DataFile, "read_if_changed", counted)
    first = mine.recency()
    assert mine.recency() is first and list(mine.latest_pushes())
    assert parses.count(True) == len(mine._files)  # each shard once (all were written)
    parses.clear()
    before = first.get("ns1/repo1", 0.0)
    other.pushed("ns1/repo1", "other")
    other.flush()
    assert mine.recency()["ns1/repo1"] > before
    assert parses.count(True) == 1  # only the shard the flush wrote
    assert all(datafile._cache is None for datafile in mine._files.values())  # parses are not kept


def test_a_flush_keeps_no_parse_of_the_file(workers):
    mine, other = workers
    filled(other, 50, random.Random(3))
    mine.pulled("ns1/repo1")
    mine.flush()
    mine.forget("ns2/repo2")
    assert all(datafile._cache is None for datafile in mine._files.values())
    assert "ns2/repo2" not in stored(mine)
    assert mine.of("ns1/repo1") == reference(other)["ns1/repo1"]


def test_the_single_file_of_earlier_versions_is_split_into_shards_at_start(tmp_path):
    data = tmp_path / "data"
    table = {f"ns{n}/repo{n}": {"pulls": n, "pushes": 1, "last_push": stamp(n), "last_push_by": f"ns{n}"}
             for n in range(100)}
    legacy = data / "db" / "activity.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({TABLE: table}))
    app = create_app({"TESTING": True, "DATA_DIR": data, "SECRET_KEY": "test-secret", "BCRYPT_ROUNDS": 4})
    activity = app.extensions[EXTENSION_KEY].activity
    assert not legacy.exists()
    assert stored(activity) == table
    assert activity.of("ns7/repo7")["pulls"] == 7
    assert list(activity.latest_pushes())[:2] == [(stamp(99), "ns99/repo99"), (stamp(98), "ns98/repo98")]
    # A split cut short (the file still there) and run again gives the same shards.
    legacy.write_text(json.dumps({TABLE: table}))
    assert activity.split_legacy_file() == 100
    assert stored(activity) == table and not legacy.exists()


def test_a_damaged_shard_stops_the_start(tmp_path):
    data = tmp_path / "data"
    create_app({"TESTING": True, "DATA_DIR": data, "SECRET_KEY": "test-secret", "BCRYPT_ROUNDS": 4})
    (data / "db" / "activity").mkdir(exist_ok=True)
    (data / "db" / "activity" / "03.json").write_text('{"repositories": {"a/b": {"pulls": 1')
    with pytest.raises(CorruptDataFile, match="03.json"):
        create_app({"TESTING": True, "DATA_DIR": data, "SECRET_KEY": "test-secret", "BCRYPT_ROUNDS": 4})


def test_a_forgotten_repository_loses_its_recency(workers):
    mine, other = workers
    filled(other, 30, random.Random(6))
    mine.pulled("fresh/only-here")
    assert "fresh/only-here" in mine.recency()
    mine.forget("fresh/only-here")
    mine.forget("ns3/repo3")
    assert "fresh/only-here" not in mine.recency() and "ns3/repo3" not in mine.recency()
    assert dict(mine.recency()) == {repository: datetime.fromisoformat(
        max(stats.get("last_pull") or "", stats.get("last_push") or "")).timestamp()
        for repository, stats in reference(mine).items() if stats.get("last_pull") or stats.get("last_push")}


def test_other_workers_flushes_are_looked_for_at_most_once_per_recheck_interval(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    mine = Activity(store, flush_seconds=3600, recheck_seconds=0.3)
    other = Activity(Store(tmp_path / "data"), flush_seconds=3600, recheck_seconds=0)
    assert "ns1/repo1" not in mine.recency()  # looked now: nothing flushed yet
    other.pulled("ns1/repo1")
    other.flush()
    assert "ns1/repo1" not in mine.recency()  # within the interval the shards are not read again
    time.sleep(0.35)
    assert "ns1/repo1" in mine.recency()
    other.pulled("ns2/repo2")
    other.flush()
    mine.pulled("ns3/repo3")
    mine.flush()  # this worker's own write: every shard is looked at again at once
    assert {"ns2/repo2", "ns3/repo3"} <= set(mine.recency())


def test_a_refresh_never_parses_alongside_a_flush_and_catches_up_at_the_next_query(workers):
    # One shard's parse at a time in a worker: a query that finds this worker's flush under way
    # ranks with what it has instead of parsing a second shard (2.8 MiB at 100,000 repositories)
    # beside the flush's, and the next query reads what changed.
    mine, other = workers
    other.pushed("alice/app", "alice")
    other.flush()
    with mine._parsing:  # as during a flush of this worker
        assert "alice/app" not in mine.recency()
    assert mine.recency()["alice/app"] > 0
