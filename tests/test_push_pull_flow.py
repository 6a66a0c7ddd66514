"""Request-by-request replays of what docker 1.x does against the index (protocol.md 4, 5)."""
from tests.conftest import ADMIN, image_id


def test_push_flow_then_anonymous_pull(alice):
    chain = [{"id": image_id(1)}, {"id": image_id(2)}, {"id": image_id(3), "Tag": "latest"}]
    announced = alice.put_repository("alice/app", chain)
    assert announced.status_code == 200
    token = announced.headers["X-Docker-Token"]
    assert token.endswith(',repository="alice/app",access=write')
    assert not token.startswith("Token ")
    assert announced.headers["WWW-Authenticate"] == f"Token {token}"
    assert announced.headers.getlist("X-Docker-Endpoints") == ["localhost"]

    for _ in range(3):  # a registry re-validates the same token on every request
        checked = alice.validate("alice/app", token)
        assert checked.status_code == 200
        assert [entry["id"] for entry in checked.get_json()] == [image_id(1), image_id(2), image_id(3)]

    final = alice.put_images("alice/app", [])
    assert final.status_code == 204
    assert final.data == b""

    pulled = alice.get_images("alice/app")
    assert pulled.status_code == 200
    read_token = pulled.headers["X-Docker-Token"]
    assert read_token.endswith(',repository="alice/app",access=read')
    assert len(pulled.get_json()) == 3
    assert alice.validate("alice/app", read_token).status_code == 200


def test_library_push_needs_admin_and_both_url_forms_are_one_repository(alice):
    image = [{"id": image_id(7), "Tag": "latest"}]
    assert alice.put_repository("busybox", image).status_code == 403
    created = alice.put_repository("busybox", image, auth=ADMIN)
    assert created.status_code == 200
    assert 'repository="library/busybox"' in created.headers["X-Docker-Token"]
    token = created.headers["X-Docker-Token"]
    assert alice.validate("library/busybox", token).status_code == 200
    assert alice.validate("busybox", token).status_code == 200
    assert alice.get_images("library/busybox").get_json() == alice.get_images("busybox").get_json()
