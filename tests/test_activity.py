"""Pull/push counts: what a worker keeps of the flushed file is derived from it, never its parse.

Each answer is compared with the same question answered from a full parse of the file merged
with the pending counts (what the worker kept before).
"""
from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from index import activity as activity_module
from index.activity import Activity
from index.store import Store


@pytest.fixture
def workers(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    return Activity(store, flush_seconds=3600), Activity(Store(tmp_path / "data"), flush_seconds=3600)


def stamp(minutes: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def write_file(activity: Activity, table: dict) -> None:
    with activity._file.locked():
        activity._file.write({"repositories": table})


def reference(activity: Activity) -> dict[str, dict]:
    """The flushed file, fully parsed, with this worker's pending counts merged in."""
    path = activity._file.path
    table = json.loads(path.read_text()).get("repositories", {}) if path.exists() else {}
    merged = {repository: dict(stats) for repository, stats in table.items()}
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
    monkeypatch.setattr(activity_module, "LATEST_PUSHES_KEPT", 5)  # the home page's fallback runs too
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
    read = type(mine._file).read_if_changed

    def counted(self, since):
        found = read(self, since)
        parses.append(found is not None)
        return found
    monkeypatch.setattr(type(mine._file), "read_if_changed", counted)
    first = mine.recency()
    assert mine.recency() is first and list(mine.latest_pushes())
    assert parses.count(True) == 1
    other.pushed("ns1/repo1", "other")
    other.flush()
    assert mine.recency() is not first
    assert parses.count(True) == 2
    assert mine._file._cache is None  # the parse itself is not kept


def test_a_flush_keeps_no_parse_of_the_file(workers):
    mine, other = workers
    filled(other, 50, random.Random(3))
    mine.pulled("ns1/repo1")
    mine.flush()
    mine.forget("ns2/repo2")
    assert mine._file._cache is None
    assert mine.of("ns1/repo1") == reference(other)["ns1/repo1"]
