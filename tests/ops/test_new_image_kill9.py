"""kill -9 of a serving index while clients announce new image ids into existing repositories.

Those pushes are journal appends (``files.DataFile.append_patch``), folded into the namespace
file every few hundred: after each kill and a restart, every id the server answered 200 for is
in its repository, read by a restarted server and by a fresh ``Store``.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from index.ops.v1client import V1Client, basic_header
from index.passwords import hash_password
from index.store import Store
from index.store.files import JOURNAL_SUFFIX
from tests.conftest import image_id
from tests.ops.processes import serving
from tests.processes import kill_9_server

pytestmark = pytest.mark.live  # serves the index in processes and kills them with SIGKILL

CLIENTS = 4
ROUNDS = 3
REQUESTS_PER_CLIENT = 2000  # bounds each client's loop; the kill comes long before


def _push_until_refused(url: str, user: int, first: int, acked: list[str], stop: threading.Event) -> None:
    client = V1Client(url, keep_alive=True, timeout=5)
    headers = {**basic_header(f"pusher{user}", "secret-pw"), "X-Docker-Token": "true",
               "Content-Type": "application/json"}
    for n in range(first, first + REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        wanted = image_id(user * 1_000_000 + n)
        try:
            reply = client.request("PUT", f"/v1/repositories/pusher{user}/app/",
                                   json.dumps([{"id": wanted, "Tag": "latest"}]).encode(), headers)
        except OSError:
            return  # the server is gone: this id was never acknowledged
        if reply.status != 200:
            return
        acked.append(wanted)


def test_every_acknowledged_new_image_surviveskill_9_server(tmp_path):
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    store.open()
    for user in range(CLIENTS):
        store.create_user(f"pusher{user}", hash_password("secret-pw", 4), f"p{user}@example.com", active=True)
        store.announce_repository(f"pusher{user}", "app", [], owner=f"pusher{user}",
                                  new_fields={"visibility": "public"})
    store.close()
    acked: dict[int, list[str]] = {user: [] for user in range(CLIENTS)}
    settings = {"INDEX_DATA_DIR": str(data_dir), "INDEX_WORKERS": "2", "INDEX_THREADS": "4"}
    for trial in range(ROUNDS):
        with serving(settings, tmp_path / f"serve{trial}.log") as served:
            stop = threading.Event()
            threads = [threading.Thread(target=_push_until_refused,
                                        args=(served.url, user, trial * REQUESTS_PER_CLIENT, acked[user], stop))
                       for user in range(CLIENTS)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while sum(map(len, acked.values())) < (trial + 1) * 400 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1 * trial)  # kills at different moments of an append or a compaction
            kill_9_server(served.process.pid)
            served.process.wait(timeout=10)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads)
        assert all(acked.values())
        reopened = Store(data_dir)
        reopened.open()  # parses every file and journal
        for user, ids in acked.items():
            held = {image["id"] for image in reopened.get_repository(f"pusher{user}", "app")["images"]}
            assert set(ids) <= held, f"lost {len(set(ids) - held)} acknowledged ids of pusher{user}"
        reopened.close()
    namespaces = data_dir / "db" / "namespaces"
    assert any(path.name.endswith(JOURNAL_SUFFIX) for path in namespaces.iterdir())
    # Some ids were folded into a base file (a compaction ran), some are still in journals.
    assert any(json.loads((namespaces / f"pusher{user}.json").read_bytes())["repositories"]["app"]["images"]
               for user in range(CLIENTS))
    with serving(settings, tmp_path / "after.log") as served:
        client = V1Client(served.url)
        for user, ids in acked.items():
            reply = client.request("GET", f"/v1/repositories/pusher{user}/app/images",
                                   headers=basic_header(f"pusher{user}", "secret-pw"))
            assert reply.status == 200
            assert set(ids) <= {image["id"] for image in reply.json()}
