"""The index beside an external docker-registry 0.9.1, for a private repository (issue 12).

docker-registry 0.9.1 (Python 2 only) is replayed here request by request as its
``docker_registry/toolkit.py`` makes them: ``check_token`` -> ``validate_token`` sends the client's
``Authorization: Token ...`` to ``GET <index>/v1/repositories/<ns>/<repo>/images`` and refuses on
anything but 200; ``validate_parent_access`` sends it to ``GET .../layer/<parent>/access`` and
reads ``{"access": ...}``.
"""
from __future__ import annotations

import json

import pytest

from index import create_app
from tests.conftest import ADMIN, basic, image_id

from .world import PASSWORD, call_json

OWNER, READER, STRANGER = ("extowner", PASSWORD), ("extreader", PASSWORD), ("extstranger", PASSWORD)
SECRET = [{"id": image_id(0xF00)}, {"id": image_id(0xF01)}]
OTHER_PRIVATE = [{"id": image_id(0xF10)}]
PUBLIC = [{"id": image_id(0xF20)}]


class Registry:
    """What docker-registry 0.9.1 asks the index, and how it reads the answer."""

    def __init__(self, index) -> None:
        self.index = index

    def check_token(self, authorization: str, namespace: str, repository: str) -> bool:
        answer = self.index.get(f"/v1/repositories/{namespace}/{repository}/images",
                                headers={"Authorization": authorization})
        if answer.status_code != 200:
            return False
        [entry["id"] for entry in json.loads(answer.get_data())]  # it stores the list
        return True

    def parent_access(self, authorization: str, namespace: str, repository: str, parent: str) -> bool:
        answer = self.index.get(f"/v1/repositories/{namespace}/{repository}/layer/{parent}/access",
                                headers={"Authorization": authorization})
        return answer.status_code == 200 and json.loads(answer.get_data()).get("access", False)


@pytest.fixture
def index(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "ext",
                      "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
                      "REGISTRY_ENDPOINTS": "registry.example:5001"})
    client = app.test_client()
    for user, password in (OWNER, READER, STRANGER):
        assert call_json(client, "POST", "/v1/users/", {}, {"username": user, "password": password,
                                                             "email": f"{user}@example.com"}).status_code == 201
    owner = basic(*OWNER)
    for repo, images in (("secret", SECRET), ("other", OTHER_PRIVATE), ("open", PUBLIC)):
        answer = call_json(client, "PUT", f"/v1/repositories/extowner/{repo}/", {**owner, "X-Docker-Token": "true"}, images)
        assert answer.status_code == 200
        assert answer.headers["X-Docker-Endpoints"] == "registry.example:5001"
    assert call_json(client, "POST", "/api/v1/repository/extowner/open/changevisibility", owner,
                     {"visibility": "public"}).status_code == 200
    assert call_json(client, "PUT", "/api/v1/repository/extowner/secret/permissions/user/extreader", owner,
                     {"role": "read"}).status_code == 200
    return client


def _token(index, who, repo: str, method: str = "GET") -> str | None:
    headers = {"X-Docker-Token": "true", **(basic(*who) if who else {})}
    answer = (index.get(f"/v1/repositories/{repo}/images", headers=headers) if method == "GET"
              else call_json(index, "PUT", f"/v1/repositories/{repo}/", headers, []))
    if answer.status_code != 200:
        return None
    return "Token " + answer.headers["X-Docker-Token"]


def test_push_by_the_owner_is_validated(index):
    registry = Registry(index)
    write = _token(index, OWNER, "extowner/secret", "PUT")
    assert registry.check_token(write, "extowner", "secret")
    assert registry.parent_access(write, "extowner", "secret", SECRET[0]["id"])


def test_pull_of_a_private_repository_by_a_reader_and_not_by_others(index):
    registry = Registry(index)
    read = _token(index, READER, "extowner/secret")
    assert read is not None and registry.check_token(read, "extowner", "secret")
    # The stranger and an anonymous client get no token at all (404, as for a missing repository).
    assert _token(index, STRANGER, "extowner/secret") is None
    assert _token(index, None, "extowner/secret") is None
    # A token for one repository is no key to another.
    assert not registry.check_token(read, "extowner", "other")


def test_layer_access_is_true_only_through_a_readable_repository(index):
    registry = Registry(index)
    read = _token(index, READER, "extowner/secret")
    assert registry.parent_access(read, "extowner", "secret", SECRET[1]["id"])        # its own
    assert registry.parent_access(read, "extowner", "secret", PUBLIC[0]["id"])         # a public one
    assert not registry.parent_access(read, "extowner", "secret", OTHER_PRIVATE[0]["id"])  # hidden
    assert not registry.parent_access(read, "extowner", "secret", image_id(0xFFF))     # nowhere
    stranger_public = _token(index, STRANGER, "extowner/open")
    assert registry.parent_access(stranger_public, "extowner", "open", PUBLIC[0]["id"])
    assert not registry.parent_access(stranger_public, "extowner", "open", SECRET[0]["id"])
    # A grant on the other repository opens its layers to the same token.
    assert call_json(index, "PUT", "/api/v1/repository/extowner/other/permissions/user/extreader",
                     basic(*OWNER), {"role": "read"}).status_code == 200
    assert registry.parent_access(read, "extowner", "secret", OTHER_PRIVATE[0]["id"])


def test_tokens_already_handed_out_stop_when_access_is_taken_away(index):
    registry = Registry(index)
    read = _token(index, READER, "extowner/secret")
    anonymous = _token(index, None, "extowner/open")
    assert registry.check_token(read, "extowner", "secret") and registry.check_token(anonymous, "extowner", "open")
    assert index.delete("/api/v1/repository/extowner/secret/permissions/user/extreader",
                        headers=basic(*OWNER)).status_code == 204
    assert call_json(index, "POST", "/api/v1/repository/extowner/open/changevisibility", basic(*OWNER),
                     {"visibility": "private"}).status_code == 200
    assert not registry.check_token(read, "extowner", "secret")
    assert not registry.parent_access(read, "extowner", "secret", SECRET[0]["id"])
    assert not registry.check_token(anonymous, "extowner", "open")
    # The registry's documented alternative check refuses too.
    assert index.put("/v1/repositories/extowner/secret/auth", headers={"Authorization": read}).status_code == 404
