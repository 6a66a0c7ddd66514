"""Disk full, I/O errors and a read-only data dir: 5xx with a clear JSON error, old data intact."""
import errno
import os

import pytest

import index.store.files as files
from tests.conftest import basic, image_id

FIRST = [{"id": image_id(1)}]


def namespace_file(settings):
    return settings["DATA_DIR"] / "db" / "namespaces" / "alice.json"


def _fail_writes(monkeypatch, code):
    def failing(fd, payload):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(files, "_write_all", failing)


def _no_temp_files(settings):
    return not any((settings["DATA_DIR"] / "db").rglob(f"*{files.TEMP_MARK}*"))


@pytest.mark.parametrize("code, status, words", [(errno.ENOSPC, 507, "disk is full"),
                                                 (errno.EDQUOT, 507, "disk is full"),
                                                 (errno.EIO, 503, "Input/output error")])
def test_write_errors_answer_5xx_json_and_keep_the_old_data(alice, settings, monkeypatch, code, status, words):
    assert alice.put_repository("alice/app", FIRST).status_code == 200
    before = namespace_file(settings).read_bytes()

    _fail_writes(monkeypatch, code)
    for answer in (alice.put_repository("alice/app", [{"id": image_id(2)}]),
                   alice.put_images("alice/app", [{"id": image_id(3)}]),
                   alice.put_repository("alice/other", FIRST),
                   alice.register("bobby", "secret1")):
        assert answer.status_code == status
        assert answer.is_json and words in answer.get_json()["error"]
        assert "nothing was changed" in answer.get_json()["error"]

    assert namespace_file(settings).read_bytes() == before
    assert _no_temp_files(settings)
    # Reads keep being served, from the old data.
    assert [image["id"] for image in alice.get_images("alice/app").get_json()] == [image_id(1)]
    assert alice.login().status_code == 200

    monkeypatch.undo()  # space freed: writes work again
    assert alice.put_images("alice/app", [{"id": image_id(4)}]).status_code == 204
    assert len(alice.get_images("alice/app").get_json()) == 2


def test_a_failing_rename_or_folder_sync_keeps_old_data(alice, settings, monkeypatch):
    assert alice.put_repository("alice/app", FIRST).status_code == 200
    before = namespace_file(settings).read_bytes()

    def failing_replace(source, target):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    monkeypatch.setattr(files.os, "replace", failing_replace)
    answer = alice.put_images("alice/app", [{"id": image_id(2)}])
    assert answer.status_code == 503 and answer.is_json
    assert namespace_file(settings).read_bytes() == before
    assert _no_temp_files(settings)


def _make_read_only(monkeypatch):
    """Every open for writing fails with EROFS, as on a file system remounted read-only."""
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", read_only_open)


def test_read_only_data_dir_refuses_writes_and_serves_reads(alice, settings, monkeypatch):
    assert alice.put_repository("alice/app", FIRST).status_code == 200
    assert alice.put_images("alice/app").status_code == 204
    _make_read_only(monkeypatch)

    refused = alice.put_images("alice/app", [{"id": image_id(2)}])
    assert refused.status_code == 503
    assert "Read-only file system" in refused.get_json()["error"]
    assert alice.register("bobby", "secret1").status_code == 503
    assert alice.login().status_code == 200
    pulled = alice.get_images("alice/app", auth=("alice", "secret1"))
    assert pulled.status_code == 200 and [image["id"] for image in pulled.get_json()] == [image_id(1)]
    assert alice.validate("alice/app", pulled.headers["X-Docker-Token"]).status_code == 200
    assert alice.client.get("/v1/search?q=app").get_json()["num_results"] == 1


def test_read_only_data_dir_still_starts(settings, app, monkeypatch):
    """A restarted worker on a data dir that became read-only comes up and serves reads."""
    from index import create_app
    _make_read_only(monkeypatch)
    (settings["DATA_DIR"] / "db" / "users.json.tmp-left").write_text("{")  # needs a lock to clean
    client = create_app(settings).test_client()
    assert client.get("/v1/users/", headers=basic("admin", "adminpass")).status_code == 200
