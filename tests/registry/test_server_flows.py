"""Full push / pull / re-push / delete flows against a real gunicorn process (protocol.md 4, 5, 8)."""
from __future__ import annotations

import json

from tests.conftest import image_id

from .conftest import ADMIN
from .layers import chain


def ids(base: int, count: int = 3) -> list[str]:
    return [image_id(base + n) for n in range(count)]


def test_push_pull_byte_identical_then_repush_skips_every_layer(server):
    alice = server.register("alicea")
    layers = chain(ids(0x100))
    report = alice.push("alicea/app", layers)
    assert report.uploaded == [layer.image_id for layer in layers] and report.skipped == []
    for layer in layers:
        assert server.layer_file(layer.image_id).read_bytes() == layer.body

    # Anonymous pull: the index hands out a read token, the registry accepts it.
    pulled = server.client().pull("alicea/app")
    assert list(pulled) == [layer.image_id for layer in layers]
    for layer in layers:
        assert pulled[layer.image_id] == (layer.json_bytes, layer.body)

    # docker 1.x re-push: GET json answers 200 (write token reads), so nothing is re-sent.
    again = alice.push("alicea/app", layers)
    assert again.uploaded == [] and again.skipped == [layer.image_id for layer in layers]
    # A client that skips the lookup gets the 409 "Image already exists" on each json PUT.
    blind = alice.push("alicea/app", layers, lookup_first=False)
    assert blind.uploaded == [] and len(blind.skipped) == 3


def test_ranged_resume_and_head(server):
    bob = server.register("bobby")
    layers = chain(ids(0x200, 1))
    bob.push("bobby/app", layers)
    token, registry = bob.read_token("bobby/app")
    path = f"/v1/images/{layers[0].image_id}/layer"
    auth = {"Authorization": f"Token {token}"}
    head = bob.request("HEAD", path, headers=auth, host=registry)
    assert head.status == 200 and head.body == b""
    assert head.headers["Accept-Ranges"] == "bytes"
    assert int(head.headers["Content-Length"]) == len(layers[0].body)
    resumed = bob.request("GET", path, headers={**auth, "Range": "bytes=100-"}, host=registry)
    assert resumed.status == 206
    assert resumed.body == layers[0].body[100:]
    assert resumed.headers["Content-Range"] == f"bytes 100-{len(layers[0].body) - 1}/{len(layers[0].body)}"


def test_shared_layers_survive_deleting_one_repository(server):
    carol = server.register("carol")
    first = chain(ids(0x300))
    carol.push("carol/app", first)
    # A second repository built on the first two layers, with its own top layer.
    second = first[:2] + chain([image_id(0x3FF)], salt="other")
    second[2].parent = first[1].image_id
    report = carol.push("carol/tool", second)
    assert report.skipped == [first[0].image_id, first[1].image_id]
    assert report.uploaded == [image_id(0x3FF)]

    carol.delete("carol/app")
    assert not server.layer_file(first[2].image_id).exists()   # only carol/app used it
    for shared in first[:2]:
        assert server.layer_file(shared.image_id).exists()
    pulled = server.client().pull("carol/tool")
    assert [pulled[layer.image_id] for layer in second] == [(l.json_bytes, l.body) for l in second]
    gone = server.client().request("GET", "/v1/repositories/carol/app/images",
                                   headers={"X-Docker-Token": "true"})
    assert gone.status == 404

    # Deleting the last user of the shared layers gives their space back too.
    carol.delete("carol/tool")
    for layer in second:
        assert not server.layer_file(layer.image_id).exists()


def test_library_repository_push_by_admin_and_pull_with_library_prefix(server):
    admin = server.client(ADMIN)
    layers = chain(ids(0x400, 2))
    admin.push("busybox", layers)
    token, registry = server.client().read_token("busybox")
    for path in ("/v1/repositories/library/busybox/tags", "/v1/repositories/busybox/tags"):
        tags = admin.request("GET", path, headers={"Authorization": f"Token {token}"}, host=registry)
        assert tags.status == 200 and tags.json() == {"latest": layers[-1].image_id}
    pulled = server.client().pull("busybox")
    assert pulled[layers[-1].image_id] == (layers[-1].json_bytes, layers[-1].body)


def _token(client, remote, layers):
    announced = client.announce(remote, layers)
    assert announced.status == 200
    return {"Authorization": "Token " + announced.headers["X-Docker-Token"]}


def test_bad_uploads_are_4xx_and_leave_nothing_complete(server):
    dave = server.register("daved")
    layers = chain(ids(0x500, 2))
    root, child = layers
    auth = _token(dave, "daved/app", layers)

    # A layer before its json.
    early = dave.request("PUT", f"/v1/images/{root.image_id}/layer", root.body, auth, chunked=True)
    assert early.status == 404 and "json" in early.json()["error"]
    # json whose parent does not exist (the root was never uploaded).
    orphan = dave.request("PUT", f"/v1/images/{child.image_id}/json", child.json_bytes,
                          {**auth, "Content-Type": "application/json"})
    assert orphan.status == 400 and "parent" in orphan.json()["error"]
    # An id that was not announced for this repository.
    stranger = chain([image_id(0x5FF)])[0]
    refused = dave.request("PUT", f"/v1/images/{stranger.image_id}/json", stranger.json_bytes,
                           {**auth, "Content-Type": "application/json"})
    assert refused.status == 403 and "not announced" in refused.json()["error"]

    assert dave.request("PUT", f"/v1/images/{root.image_id}/json", root.json_bytes,
                        {**auth, "Content-Type": "application/json"}).status == 200
    # A chunked upload that breaks off half way (granian ends such a body as if it were complete:
    # then the gzip check finds it cut short).
    broken = dave.truncated_upload(f"/v1/images/{root.image_id}/layer", auth, root.body[:len(root.body) // 2])
    assert broken.status == 400 and (b"broke off" in broken.body or b"truncated" in broken.body)
    assert server.unfinished_uploads() == []
    assert not server.layer_file(root.image_id).exists()
    # A complete chunked body whose gzip stream is cut short.
    cut = dave.request("PUT", f"/v1/images/{root.image_id}/layer", root.body[:-20], auth, chunked=True)
    assert cut.status == 400 and "truncated" in cut.json()["error"]
    # Wrong checksums after a good layer: 400, and the image is still not served.
    assert dave.request("PUT", f"/v1/images/{root.image_id}/layer", root.body, auth, chunked=True).status == 200
    wrong_tarsum = dave.request("PUT", f"/v1/images/{root.image_id}/checksum", b"",
                                {**auth, "X-Docker-Checksum": "tarsum+sha256:" + "0" * 64,
                                 "X-Docker-Checksum-Payload": root.payload_checksum})
    assert wrong_tarsum.status == 400 and "Checksum mismatch" in wrong_tarsum.json()["error"]
    wrong_payload = dave.request("PUT", f"/v1/images/{root.image_id}/checksum", b"",
                                 {**auth, "X-Docker-Checksum": root.tarsum,
                                  "X-Docker-Checksum-Payload": "sha256:" + "0" * 64})
    assert wrong_payload.status == 400
    read_token, _ = dave.read_token("daved/app")
    for suffix in ("json", "layer", "ancestry"):
        missing = dave.request("GET", f"/v1/images/{root.image_id}/{suffix}",
                               headers={"Authorization": f"Token {read_token}"})
        assert missing.status == 404, suffix

    # The next push finishes both images.
    report = dave.push("daved/app", layers)
    assert report.uploaded == [root.image_id, child.image_id]
    pulled = server.client().pull("daved/app")
    assert pulled[child.image_id] == (child.json_bytes, child.body)
    log = (server.data_dir.parent / "server.log").read_text()
    assert "Traceback" not in log and "unhandled error" not in log


def test_concurrent_pushes_of_different_repositories(server):
    """Two workers, several threads: parallel pushes of independent repositories all land."""
    from concurrent.futures import ThreadPoolExecutor
    users = [server.register(f"par{n}user") for n in range(4)]
    chains = [chain(ids(0x600 + 0x10 * n, 2), salt=str(n)) for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda pair: pair[0].push(f"{pair[0].credentials[0]}/app", pair[1]),
                                zip(users, chains, strict=False)))
    assert all(len(report.uploaded) == 2 for report in reports)
    for user, layers in zip(users, chains, strict=False):
        pulled = server.client().pull(f"{user.credentials[0]}/app")
        assert [pulled[l.image_id] for l in layers] == [(l.json_bytes, l.body) for l in layers]
    assert json.loads(users[0].request("GET", "/v1/_ping").body) is True


def test_racing_uploads_of_one_shared_image_end_consistent(server):
    """Two pushers upload the same new base image at once (two workers): no 5xx, one good copy."""
    from concurrent.futures import ThreadPoolExecutor
    base = chain([image_id(0x700)], salt="shared")[0]
    pushers = [server.register(f"race{n}user") for n in range(2)]
    tokens = [_token(p, f"{p.credentials[0]}/app", [base]) for p in pushers]

    def upload(pair):
        client, auth = pair
        statuses = []
        for _ in range(3):  # what a client would do: retry its push a few times
            steps = [
                client.request("PUT", f"/v1/images/{base.image_id}/json", base.json_bytes,
                               {**auth, "Content-Type": "application/json"}),
                client.request("PUT", f"/v1/images/{base.image_id}/layer", base.body, auth, chunked=True),
                client.request("PUT", f"/v1/images/{base.image_id}/checksum", b"",
                               {**auth, "X-Docker-Checksum": base.tarsum,
                                "X-Docker-Checksum-Payload": base.payload_checksum}),
            ]
            statuses += [step.status for step in steps]
            if client.request("GET", f"/v1/images/{base.image_id}/json", headers=auth).status == 200:
                break
        return statuses

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(upload, zip(pushers, tokens, strict=False)))
    assert all(status in (200, 400, 404, 409) for statuses in results for status in statuses), results
    # Each account has its own version of the id; identical bytes are stored once.
    files = {server.layer_file(base.image_id, p.credentials[0]) for p in pushers}
    assert len(files) == 1 and files.pop().read_bytes() == base.body
    for client, auth in zip(pushers, tokens, strict=False):
        got = client.request("GET", f"/v1/images/{base.image_id}/layer", headers=auth)
        assert got.status == 200 and got.body == base.body
