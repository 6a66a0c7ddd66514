"""The search index's compact form: numbered entries, array postings, gaps renumbered away.

Answers stay those of a scan of every record (``scan`` of test_search_index) through pushes,
description changes, deletes and visibility changes made by another worker, and a private
repository is never found by someone who may not read it.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from index import search_index
from index.search_index import SearchIndex
from index.store import Store
from index.store.access import AccessStore
from tests.conftest import basic
from tests.test_search_index import ROOT, answer, fill, scan


@pytest.fixture
def filled(store):
    fill(store, random.Random(5), namespaces=4, per_namespace=4)
    return store


def slots(index: SearchIndex) -> int:
    """Entry numbers handed out and not yet renumbered away (live ones and gaps)."""
    return len(index._names)


def test_a_push_to_an_existing_repository_changes_no_entry(filled):
    index = SearchIndex(filled)
    before = index.search("", 0, 100)
    numbers = slots(index)
    other = Store(filled.root)  # another worker
    for record in list(other.iter_repositories()):
        if record["state"] == "active":
            other.merge_images(record["namespace"], record["name"], [{"id": "f" * 64}])
    assert index.search("", 0, 100) == before
    assert slots(index) == numbers  # every namespace was re-read; no entry was replaced


def test_changed_and_removed_entries_leave_gaps_that_queries_skip(filled):
    index = SearchIndex(filled)
    assert index.search("", 0, 100)[0] == len(index)
    other = Store(filled.root)
    other.set_description("ns1", next(r["name"] for r in other.iter_repositories("ns1")
                                      if r["state"] == "active"), "now about zebras")
    other.announce_repository("ns2", "okapi", [{"id": "a" * 64}], owner="ns2")
    other.delete_repository("ns2", "okapi")
    assert index.search("zebras", 0, 25)[0] == 1
    assert index.search("okapi", 0, 25) == (0, [])
    assert slots(index) > len(index)  # the old description's entry and the okapi are gaps
    for needle in ["", "e", "ns1", "zebra", "-", "s/"]:
        assert index.search(needle, 0, 100)[0] == scan(filled, needle, 1, 100)["num_results"]


def test_renumbering_keeps_every_answer(filled, monkeypatch):
    monkeypatch.setattr(search_index, "COMPACT_AFTER_DROPS", 5)
    index = SearchIndex(filled)
    other = Store(filled.root)
    rng = random.Random(3)
    renumbered = []
    compact = SearchIndex._compact_if_worthwhile

    def watched(self: SearchIndex) -> None:
        gaps = self._dropped
        compact(self)
        if gaps and not self._dropped:
            renumbered.append(gaps)
    monkeypatch.setattr(SearchIndex, "_compact_if_worthwhile", watched)
    for step in range(60):
        namespace = f"ns{rng.randrange(1, 4)}"
        name = f"churn{rng.randrange(6)}"
        action = rng.random()
        if action < 0.5:
            other.announce_repository(namespace, name, [{"id": f"{step:064x}"}], owner=namespace)
            other.set_description(namespace, name, f"Churned {rng.choice(['Nginx', 'redis', 'web-app'])} {step}")
        elif other.get_repository(namespace, name) is not None:
            other.delete_repository(namespace, name)
        for record in list(other.iter_repositories(namespace))[:3]:  # more gaps: renumbered sooner
            other.set_description(namespace, record["name"], f"Step {step} of {record['name']}")
        for needle in ["", "churn", "nginx", "web-", "d 1", "ns2/"]:
            assert index.search(needle, 0, 100) == (scan(filled, needle, 1, 100)["num_results"],
                                                    scan(filled, needle, 1, 100)["results"]), (step, needle)
    assert len(renumbered) >= 2
    # Tokens nobody holds any more leave the vocabulary at a renumbering.
    assert all(index._postings.values())


def test_private_repositories_are_not_found_by_others_across_workers(alice, client, app):
    assert alice.put_repository("alice/secretapp", [{"id": "a" * 64}]).status_code == 200
    assert alice.put_repository("alice/openapp", [{"id": "b" * 64}]).status_code == 200
    assert answer(client, "app")["num_results"] == 2
    other = Store(Path(app.config["DATA_DIR"]))  # another worker changes the visibility
    access = AccessStore(other)
    access.set_visibility("alice", "secretapp", "private")
    anonymous = answer(client, "app")
    assert anonymous == {"num_results": 1, "num_pages": 1, "results": [("alice/openapp", "")]}
    owner = client.get("/v1/search?q=secret", headers=basic("alice", "secret1")).get_json()
    assert [result["name"] for result in owner["results"]] == ["alice/secretapp"]
    other.set_description("alice", "secretapp", "a secret description")
    assert answer(client, "secret")["num_results"] == 0  # neither by name nor by description
    assert answer(client, "")["num_results"] == 1
    access.set_visibility("alice", "secretapp", "public")
    assert answer(client, "secret")["results"] == [("alice/secretapp", "a secret description")]
    access.create_repository("alice", "hidden", "alice", "hidden app", "private", {})
    assert answer(client, "hidden")["num_results"] == 0
    assert answer(client, "app")["num_results"] == 2


@pytest.mark.live
def test_a_visibility_change_in_another_process_hides_the_repository(alice, client, app):
    assert alice.put_repository("alice/giraffe", [{"id": "c" * 64}]).status_code == 200
    assert answer(client, "giraffe")["num_results"] == 1
    script = ("import sys; from pathlib import Path; from index.store import Store; "
              "from index.store.access import AccessStore; "
              "AccessStore(Store(Path(sys.argv[1]))).set_visibility('alice', 'giraffe', 'private')")
    subprocess.run([sys.executable, "-c", script, str(app.config["DATA_DIR"])], cwd=ROOT, check=True, timeout=60)
    assert answer(client, "giraffe")["num_results"] == 0


def test_a_shared_data_dir_answers_as_the_full_scan_after_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(search_index, "COMPACT_AFTER_DROPS", 3)
    store = Store(tmp_path / "data")
    store.open()
    fill(store, random.Random(9), namespaces=5, per_namespace=6)
    index = SearchIndex(store)
    index.search("", 0, 1)
    for record in list(store.iter_repositories()):  # every description changes: all entries drop
        store.set_description(record["namespace"], record["name"], f"Second {record['name']}")
    for needle in ["", "second", "nginx", "-", "library/"]:
        assert index.search(needle, 0, 100) == (scan(store, needle, 1, 100)["num_results"],
                                                scan(store, needle, 1, 100)["results"])
    assert slots(index) == len(index)
