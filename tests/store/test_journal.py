"""The journal beside a data file: merge patches appended instead of rewriting the file.

Real files throughout; two DataFile objects on one path are what two worker processes see (each
has its own read cache), and the concurrency test runs a writer and a reader as processes.
"""
import json
import multiprocessing

import pytest

from index.ops.backup import create_backup, restore_backup
from index.store import CorruptDataFile, StorageFailure, Store
from index.store import files as files_module
from index.store.files import STAMP_KEY, TEMP_MARK, DataFile, journal_path, merge_patch
from tests.conftest import image_id


@pytest.fixture
def base(tmp_path):
    """A data file with one record, written whole (so it has a write stamp)."""
    path = tmp_path / "ns.json"
    datafile = DataFile(path)
    with datafile.locked():
        datafile.write({"repositories": {"app": {"state": "active", "images": {image_id(0): ""}}}})
    return path


def _append(datafile, n, checksum=""):
    with datafile.locked():
        datafile.append_patch("repositories", "app", {"images": {image_id(n): checksum}, "updated": str(n)})


def _ids(data):
    return set(data["repositories"]["app"]["images"])


def test_merge_patch_follows_rfc_7386():
    target = {"a": {"b": 1, "c": 2}, "d": [1], "e": "x"}
    patched = merge_patch(target, {"a": {"b": None, "f": {"g": None, "h": 1}}, "d": [2], "e": None}, set())
    assert patched == {"a": {"c": 2, "f": {"h": 1}}, "d": [2]}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1], "e": "x"}  # with a fresh set: a copy
    assert merge_patch(target, 5) == 5


def test_a_patch_is_one_line_in_the_journal_and_the_base_is_not_rewritten(base):
    before = base.read_bytes()
    _append(DataFile(base), 1)
    assert base.read_bytes() == before
    lines = journal_path(base).read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    header, entry = json.loads(lines[0]), json.loads(lines[1])
    assert header["base"] == json.loads(before)[STAMP_KEY]
    assert entry == {"t": "repositories", "k": "app", "p": {"images": {image_id(1): ""}, "updated": "1"}}
    assert _ids(DataFile(base).read_private()) == {image_id(0), image_id(1)}


def test_another_processes_view_sees_each_append_and_its_shared_parse_never_changes(base):
    writer, reader = DataFile(base), DataFile(base)
    first = reader.read_shared()
    for n in range(1, 6):
        _append(writer, n)
        seen = reader.read_shared()
        assert _ids(seen) == {image_id(k) for k in range(n + 1)}
        assert seen["repositories"]["app"]["updated"] == str(n)
    assert _ids(first) == {image_id(0)}  # what was handed out before stays as it was
    assert reader.read_shared() is reader.read_shared()  # unchanged: the kept parse, no copy


def test_a_whole_write_folds_the_journal_in_and_removes_it(base):
    writer, reader = DataFile(base), DataFile(base)
    _append(writer, 1)
    reader.read_shared()
    with writer.locked():
        data = writer.read_private()
        data["repositories"]["app"]["description"] = "words"
        writer.write(data)
    assert not journal_path(base).exists()
    seen = reader.read_shared()
    assert _ids(seen) == {image_id(0), image_id(1)} and seen["repositories"]["app"]["description"] == "words"
    _append(writer, 2)  # a new journal on the new base
    assert _ids(reader.read_shared()) == {image_id(k) for k in range(3)}


def test_the_journal_is_folded_into_the_base_once_it_passes_its_bound(base, monkeypatch):
    monkeypatch.setattr(files_module, "JOURNAL_MIN_COMPACT_BYTES", 600)
    writer, reader = DataFile(base), DataFile(base)
    stamps = set()
    for n in range(1, 30):
        _append(writer, n)
        stamps.add(json.loads(base.read_bytes())[STAMP_KEY])
        assert _ids(reader.read_shared()) == {image_id(k) for k in range(n + 1)}
        bound = files_module.compaction_bound(base.stat().st_size)
        assert not journal_path(base).exists() or journal_path(base).stat().st_size <= bound
    assert len(stamps) > 3  # compacted several times
    assert _ids(DataFile(base).read_private()) == {image_id(k) for k in range(30)}


def test_a_fold_that_fails_keeps_the_acknowledged_line_and_the_next_append_folds(base, monkeypatch, caplog):
    monkeypatch.setattr(files_module, "JOURNAL_MIN_COMPACT_BYTES", 300)
    monkeypatch.setattr(files_module, "JOURNAL_MAX_COMPACT_BYTES", 300)
    writer = DataFile(base)
    whole_write = DataFile.write

    def disk_full(self, data, retain=True):
        raise StorageFailure("no space left on device")
    monkeypatch.setattr(DataFile, "write", disk_full)
    n = 0
    while not journal_path(base).exists() or journal_path(base).stat().st_size <= 300:
        n += 1
        _append(writer, n)  # answered: the line is durable, whatever the fold does
        assert n < 50
    assert "could not fold the journal" in caplog.text
    assert _ids(DataFile(base).read_private()) == {image_id(k) for k in range(n + 1)}
    monkeypatch.setattr(DataFile, "write", whole_write)
    _append(writer, n + 1)  # past the bound still: this append folds
    assert not journal_path(base).exists()
    assert _ids(json.loads(base.read_bytes())) == {image_id(k) for k in range(n + 2)}


def test_a_torn_last_line_is_ignored_and_cut_by_the_next_append(base):
    writer = DataFile(base)
    _append(writer, 1)
    journal = journal_path(base)
    good = journal.read_bytes()
    with open(journal, "ab") as handle:
        handle.write(b'{"t":"repositories","k":"app","p":{"images":{"' + image_id(9).encode())  # killed mid-append
    assert _ids(DataFile(base).read_private()) == {image_id(0), image_id(1)}
    _append(writer, 2)
    assert journal.read_bytes().startswith(good) and image_id(9).encode() not in journal.read_bytes()
    assert _ids(DataFile(base).read_private()) == {image_id(0), image_id(1), image_id(2)}


def test_a_whole_last_line_that_does_not_parse_was_never_acknowledged(base):
    _append(DataFile(base), 1)
    with open(journal_path(base), "ab") as handle:
        handle.write(b"\x00\x00\x00\n")
    assert _ids(DataFile(base).read_private()) == {image_id(0), image_id(1)}


def test_a_bad_line_before_the_last_is_damage_never_read_as_empty(base, tmp_path):
    _append(DataFile(base), 1)
    journal = journal_path(base)
    lines = journal.read_bytes().split(b"\n")
    lines.insert(1, b'{"t": "repositories", "k"')
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(CorruptDataFile) as caught:
        DataFile(base).read_shared()
    assert str(journal) in str(caught.value)
    header_damaged = tmp_path / "other.json"
    other = DataFile(header_damaged)
    with other.locked():
        other.write({"t": {}})
        other.append_patch("t", "k", {"v": 1})
    journal_path(header_damaged).write_bytes(b"garbage" + journal_path(header_damaged).read_bytes()[7:])
    with pytest.raises(CorruptDataFile):
        DataFile(header_damaged).check()


def test_a_compaction_killed_before_removing_the_journal_applies_it_once(base, tmp_path):
    """The base rewritten with the journal's patches, then kill -9 before the journal's unlink."""
    writer = DataFile(base)
    with writer.locked():
        writer.append_patch("repositories", "app", {"images": {image_id(1): ""}, "counter": 1})
    old_journal = journal_path(base).read_bytes()
    with writer.locked():
        data = writer.read_private()
        data["repositories"]["app"]["counter"] = 5  # a later whole write changes what the patch set
        del data["repositories"]["app"]["images"][image_id(1)]
        writer.write(data)
    journal_path(base).write_bytes(old_journal)  # as if the unlink never happened
    seen = DataFile(base).read_private()
    assert seen["repositories"]["app"]["counter"] == 5 and image_id(1) not in _ids(seen)
    _append(DataFile(base), 2)  # the stale journal is replaced, not appended to
    assert json.loads(journal_path(base).read_bytes().split(b"\n")[0])["base"] == json.loads(base.read_bytes())[STAMP_KEY]
    assert _ids(DataFile(base).read_private()) == {image_id(0), image_id(2)}


def test_store_open_checks_journals_and_removes_stale_ones_and_their_temp_files(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")
    store.merge_images("alice", "app", [{"id": image_id(2)}])
    path = store.namespace_path("alice")
    journal = journal_path(path)
    assert journal.exists()
    stale = journal.read_bytes()
    store.set_description("alice", "app", "new")  # a whole write: the journal is folded in
    journal.write_bytes(stale)
    temp = journal.with_name(journal.name + TEMP_MARK + "x1")
    temp.write_bytes(b"")
    reopened = Store(store.root)
    reopened.open()
    assert not journal.exists() and not temp.exists()
    assert [image["id"] for image in reopened.get_repository("alice", "app")["images"]] == [image_id(1), image_id(2)]
    reopened.merge_images("alice", "app", [{"id": image_id(3)}])
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], b"{oops", *lines[1:]]))
    with pytest.raises(CorruptDataFile):
        Store(store.root).open()


def test_store_pushes_to_an_existing_repository_append_and_others_rewrite(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    store.announce_repository("alice", "app", [], owner="alice")  # creation: a whole write
    path = store.namespace_path("alice")
    assert not journal_path(path).exists()
    stamp = json.loads(path.read_bytes())[STAMP_KEY]
    version = store.namespace_version("alice")
    position = store.changes_position()
    store.announce("alice", "app", [{"id": image_id(1)}], owner="alice")
    store.merge_images("alice", "app", [{"id": image_id(1), "checksum": "sha256:ab"}, {"id": image_id(2)}])
    assert json.loads(path.read_bytes())[STAMP_KEY] == stamp and journal_path(path).exists()
    assert store.namespace_version("alice") != version
    assert store.namespace_versions()["alice"] == store.namespace_version("alice")
    assert store.changes_since(position)[1] == {"alice"}  # the search index hears of it
    record = store.get_repository("alice", "app")
    assert record["images"] == [{"id": image_id(1), "checksum": "sha256:ab"}, {"id": image_id(2)}]
    store.mark_deleting("alice", "app")
    store.announce("alice", "app", [{"id": image_id(1)}], owner="alice")  # re-opened: a whole write
    assert json.loads(path.read_bytes())[STAMP_KEY] != stamp and not journal_path(path).exists()
    record = store.get_repository("alice", "app")
    assert record["state"] == "active"


def test_a_backup_holds_the_journal_as_it_was_and_restores_it(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    store.announce_repository("alice", "app", [], owner="alice")
    for n in range(3):
        store.merge_images("alice", "app", [{"id": image_id(n)}])
    archive = tmp_path / "backup.tar.gz"
    create_backup(store, archive)
    store.merge_images("alice", "app", [{"id": image_id(7)}])  # after the backup: not in it
    restored = tmp_path / "restored"
    restore_backup(archive, restored)
    again = Store(restored)
    again.open()
    assert [image["id"] for image in again.get_repository("alice", "app")["images"]] == [image_id(n) for n in range(3)]
    assert journal_path(again.namespace_path("alice")).exists()


def _write_many(path, count):
    store = Store(path)
    store.open()
    for n in range(1, count):
        store.merge_images("alice", "app", [{"id": image_id(n)}])


def test_a_reader_process_sees_ids_only_grow_while_another_process_appends(tmp_path, monkeypatch):
    monkeypatch.setattr(files_module, "JOURNAL_MIN_COMPACT_BYTES", 4096)  # compactions too
    store = Store(tmp_path / "data")
    store.open()
    store.announce_repository("alice", "app", [{"id": image_id(0)}], owner="alice")
    count = 300
    writer = multiprocessing.get_context("fork").Process(target=_write_many, args=(tmp_path / "data", count))
    writer.start()
    try:
        reader = Store(tmp_path / "data")
        seen = 1
        for _ in range(100_000):  # bounded; ends when the writer is done and all is seen
            ids = [image["id"] for image in reader.get_repository("alice", "app")["images"]]
            assert ids == [image_id(n) for n in range(len(ids))]  # in order, none missing
            assert len(ids) >= seen  # never goes back
            seen = len(ids)
            if seen == count or not writer.is_alive() and seen < count and _final(reader) == count:
                break
    finally:
        writer.join(timeout=60)
    assert writer.exitcode == 0
    assert len(reader.get_repository("alice", "app")["images"]) == count


def _final(reader):
    return len(reader.get_repository("alice", "app")["images"])


@pytest.mark.parametrize("appended", [3, 20])  # few lines are parsed one by one, many at once
@pytest.mark.parametrize("tail, readable", [
    (b"", True),
    (b'{"t":"repositories","k":"app","p":{"ima', True),  # torn: killed mid-append
    (b"\x00\x00\x00\n", True),  # a whole last line that does not parse: never acknowledged
    (b'{"t":"repositories"}\n', True),  # parses, but is no entry: the last line, never acknowledged
    (b'{"x":1}\n{"t":"repositories","k":"app","p":{}}\n', False),  # a bad line before the last
])
def test_cold_reads_of_short_and_long_journals_agree(base, appended, tail, readable):
    writer = DataFile(base)
    for n in range(1, appended + 1):
        _append(writer, n)
    with open(journal_path(base), "ab") as handle:
        handle.write(tail)
    if not readable:
        with pytest.raises(CorruptDataFile):
            DataFile(base).read_private()
        return
    data = DataFile(base).read_private()
    assert _ids(data) == {image_id(k) for k in range(appended + 1)}
    assert data["repositories"]["app"]["updated"] == str(appended)
