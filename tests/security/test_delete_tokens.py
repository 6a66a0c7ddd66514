"""Issue 11 part 3: a delete token is good only for the delete it was issued for, and is spent
when that delete completes (or a new push re-opens the repository)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import basic, disk_state, image_id
from tests.registry.layers import chain
from tests.registry.test_routes import Pusher

ALICE = basic("alice", "secret1")


def _push(client, ids, salt="", upload=True):
    pusher = Pusher(client, "alice/del", chain(ids, salt=salt))
    if upload:
        pusher.upload_all()
    tagged = client.put("/v1/repositories/alice/del/tags/latest", data=json.dumps(ids[-1]),
                        headers=pusher.token, content_type="application/json")
    assert tagged.status_code == 200
    return pusher


def _start_delete(client):
    started = client.delete("/v1/repositories/alice/del/", headers={**ALICE, "X-Docker-Token": "true"})
    assert started.status_code == 202
    return {"Authorization": "Token " + started.headers["X-Docker-Token"]}


def _tags(client):
    return client.get("/v1/repositories/alice/del/tags", headers=ALICE)


@pytest.mark.parametrize("completed", [True, False], ids=["after-final-step", "without-final-step"])
def test_a_replayed_delete_token_changes_nothing_after_a_new_push(client, alice, app, completed):
    _push(client, [image_id(1)])
    token = _start_delete(client)
    assert client.delete("/v1/repositories/alice/del/", headers=token).status_code == 200  # registry side
    if completed:
        final = client.delete("/v1/repositories/alice/del/", headers={**ALICE, "X-Docker-Endpoints": "localhost"})
        assert final.status_code == 200
    _push(client, [image_id(2)], salt="again")  # a new push of the same name
    before = disk_state(app.config["DATA_DIR"])

    for replay in (client.delete("/v1/repositories/alice/del/", headers=token),
                   client.delete("/v1/repositories/alice/del/tags", headers=token),
                   client.delete("/v1/repositories/alice/del/tags/latest", headers=token),
                   client.get("/v1/repositories/alice/del/images", headers=token)):
        assert replay.status_code in (401, 403, 404), replay.data
    assert client.put("/v1/repositories/alice/del/auth", headers=token).status_code == 403
    assert disk_state(app.config["DATA_DIR"]) == before
    assert _tags(client).get_json() == {"latest": image_id(2)}
    assert client.get(f"/v1/images/{image_id(2)}/layer", headers=ALICE).status_code == 200


def test_a_token_of_an_earlier_delete_is_not_good_for_the_next_one(client, alice, store):
    _push(client, [image_id(1)])
    first = _start_delete(client)
    _push(client, [image_id(1)], upload=False)  # a re-push (image there): the first delete is over
    second = _start_delete(client)
    assert client.delete("/v1/repositories/alice/del/", headers=first).status_code == 401
    assert store.get_repository("alice", "del")["tags"] == {"latest": image_id(1)}
    assert client.delete("/v1/repositories/alice/del/", headers=second).status_code == 200
    assert store.get_repository("alice", "del")["tags"] == {}


def test_the_delete_token_works_for_its_own_delete_until_it_completes(client, alice):
    _push(client, [image_id(1)])
    token = _start_delete(client)
    # docker retries the start; it keeps the same delete, so both tokens stay good.
    again = _start_delete(client)
    assert client.get("/v1/repositories/alice/del/images", headers=token).status_code == 200
    assert client.put("/v1/repositories/alice/del/auth", headers=again).status_code == 200
    assert client.delete("/v1/repositories/alice/del/", headers=token).status_code == 200
    final = client.delete("/v1/repositories/alice/del/", headers={**ALICE, "X-Docker-Endpoints": "localhost"})
    assert final.status_code == 200
    assert client.get("/v1/repositories/alice/del/images", headers=token).status_code == 404  # spent
