"""Request-by-request replays of what docker 0.7-1.5 does against the index (docs/protocol.md 4-8)."""
import json
import re

import pytest

from index import create_app
from index.passwords import hash_password
from index.services import EXTENSION_KEY
from tests.conftest import ADMIN, basic, image_id


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


# ------------------------------------------------------------------------------------------------
# Replays of the client's decision logic (docs/protocol.md 4-8), request by request.

ALREADY_EXISTS = b'"Username or email already exists"'


def docker_login(client, username, password, email=""):
    """docker 0.8-1.5 ``loginV1``: POST /v1/users/, then maybe GET. Returns (message, requests)."""
    requests = []
    body = json.dumps({"username": username, "password": password, "auth": "", "email": email},
                      separators=(",", ":"))
    posted = client.post("/v1/users/", data=body, content_type="application/json; charset=utf-8")
    requests.append(("POST", "/v1/users/", posted.status_code))
    if posted.status_code == 201:
        return "Account created", requests
    if posted.status_code == 400 and posted.data != ALREADY_EXISTS:
        return f"Registration: {posted.data.decode()}", requests
    if posted.status_code not in (400, 401):
        return f"Unexpected status code [{posted.status_code}]", requests
    checked = client.get("/v1/users/", headers=basic(username, password))
    requests.append(("GET", "/v1/users/", checked.status_code))
    return {200: "Login Succeeded", 401: "Wrong login/password, please try again",
            403: "Login: Account is not Active"}.get(checked.status_code, "Login: error"), requests


LOGIN_CASES = [
    # (registration, prepare, username, password, email, message, statuses)
    ("open", None, "bob_1", "secret2", "bob@example.com", "Account created", [201]),
    ("open", "alice", "alice", "secret1", "", "Login Succeeded", [400, 200]),
    ("open", "alice", "alice", "secret1", "alice@example.com", "Login Succeeded", [400, 200]),
    ("open", "alice", "alice", "secret1", "someone@else.example", "Login Succeeded", [400, 200]),
    ("open", "alice", "alice", "wrong1", "", "Wrong login/password, please try again", [400, 401]),
    ("open", "inactive", "alice", "secret1", "", "Login: Account is not Active", [400, 403]),
    ("open", None, "bob_1", "secret2", "", "Registration: ", [400]),                 # new user, no e-mail
    ("open", None, "bob_1", "abc", "bob@example.com", "Registration: ", [400]),
    ("open", None, "Bob", "secret2", "bob@example.com", "Registration: ", [400]),
    ("closed", None, "bob_1", "secret2", "bob@example.com", "Wrong login/password, please try again", [401, 401]),
    ("closed", "alice", "alice", "secret1", "", "Login Succeeded", [400, 200]),
    ("closed", "alice", "alice", "wrong1", "", "Wrong login/password, please try again", [400, 401]),
    ("closed", "inactive", "alice", "secret1", "", "Login: Account is not Active", [400, 403]),
]


@pytest.mark.parametrize("registration,prepare,username,password,email,message,statuses", LOGIN_CASES)
def test_docker_login_branches(settings, registration, prepare, username, password, email, message, statuses):
    app = create_app({**settings, "REGISTRATION": registration})
    store = app.extensions[EXTENSION_KEY].store
    if prepare:
        store.create_user("alice", hash_password("secret1", 4), "alice@example.com", active=prepare != "inactive")
    outcome, requests = docker_login(app.test_client(), username, password, email)
    assert outcome.startswith(message)
    assert [status for _, _, status in requests] == statuses
    if message == "Registration: ":
        assert json.loads(outcome.removeprefix("Registration: "))["error"]


class FakeRegistry:
    """What docker-registry 0.9 does with a token (docs/protocol.md 9): loose parse, repository and
    access checks, then ``GET {index}/v1/repositories/<ns>/<repo>/images`` with the same header."""

    FIELD = re.compile(r'(\w+)="?([^",]+)"?')
    ACCESS_FOR = {"GET": "read", "PUT": "write", "POST": "write", "DELETE": "delete"}

    def __init__(self, index_client) -> None:
        self.index = index_client
        self.validations = 0

    def check(self, method: str, repository: str, authorization: str) -> list[str] | None:
        if not authorization.lower().startswith("token"):
            return None
        fields = dict(self.FIELD.findall(authorization[len("token"):]))
        full = repository if "/" in repository else f"library/{repository}"
        if fields.get("repository") != full or fields.get("access") != self.ACCESS_FOR[method]:
            return None
        self.validations += 1
        answer = self.index.get(f"/v1/repositories/{full}/images", headers={"Authorization": authorization})
        if answer.status_code != 200:
            return None
        listed = answer.get_json()
        assert isinstance(listed, list) and all("id" in item for item in listed)
        return [item["id"] for item in listed]


def test_docker_15_push_request_by_request(alice, client):
    """1.5: PUT repo -> token -> registry calls (each validated) -> PUT images [] -> exactly 204."""
    registry = FakeRegistry(client)
    chain = [{"id": image_id(1)}, {"id": image_id(2)}, {"id": image_id(3), "Tag": "latest"}]
    step1 = client.put("/v1/repositories/alice/app/", data=json.dumps(chain),
                       headers={**basic("alice", "secret1"), "X-Docker-Token": "true",
                                "Content-type": "application/json"})
    assert step1.status_code in (200, 201)
    tokens = step1.headers.getlist("X-Docker-Token")
    endpoints = [part.strip() for line in step1.headers.getlist("X-Docker-Endpoints") for part in line.split(",")]
    assert tokens and endpoints == ["localhost"]
    authorization = "Token " + ",".join(tokens)

    for image in chain:
        # GET json with a write token: docker-registry refuses -> "not uploaded yet".
        assert registry.check("GET", "alice/app", authorization) is None
        for _ in ("json", "layer", "checksum"):
            allowed = registry.check("PUT", "alice/app", authorization)
            assert allowed is not None and image["id"] in allowed
        # Parent check of docker-registry 0.9 for private repos.
        access = client.get(f"/v1/repositories/alice/app/layer/{image['id']}/access",
                            headers={"Authorization": authorization})
        assert access.get_json() == {"access": True}
    assert registry.check("PUT", "alice/app", authorization) is not None  # tag PUT
    assert registry.validations == 10

    step3 = client.put("/v1/repositories/alice/app/images", data=b"[]",
                       headers={**basic("alice", "secret1"), "X-Docker-Token": "true",
                                "Content-type": "application/json",
                                "X-Docker-Endpoints": "http://localhost/v1/"})
    assert step3.status_code == 204                      # 200 would be "Error: Status 200"
    # The final [] must not have erased the list.
    assert [entry["id"] for entry in alice.get_images("alice/app").get_json()] == [image_id(n) for n in (1, 2, 3)]


def test_docker_07_push_commits_checksums(alice, client, store):
    """0.7: every entry carries Tag; the final PUT lists uploaded images with their checksums."""
    sums = {n: "tarsum+sha256:" + f"{n:x}" * 64 for n in (1, 2)}
    chain = [{"id": image_id(n), "Tag": "latest"} for n in (1, 2)]
    step1 = alice.put_repository("alice/app", chain)
    assert step1.status_code == 200
    final = [{"id": image_id(n), "checksum": sums[n], "Tag": "latest"} for n in (1, 2)]
    step3 = client.put("/v1/repositories/alice/app/images", data=json.dumps(final),
                       headers={**basic("alice", "secret1"), "X-Docker-Token": "true"},
                       content_type="application/json")
    assert step3.status_code == 204
    assert store.get_repository("alice", "app")["images"] == [{"id": image_id(n), "checksum": sums[n]} for n in (1, 2)]


def test_push_without_login_asks_to_log_in_then_succeeds(docker):
    """The 1.x CLI looks for "Status 401", runs docker login and retries once."""
    first = docker.put_repository("bob_1/app", [{"id": image_id(1)}], auth=("", ""))
    assert first.status_code == 401
    outcome, _ = docker_login(docker.client, "bob_1", "secret2", "bob@example.com")
    assert outcome == "Account created"
    retry = docker.put_repository("bob_1/app", [{"id": image_id(1)}], auth=("bob_1", "secret2"))
    assert retry.status_code == 200


def test_repush_by_the_owner_repeats_the_same_sequence(alice, client):
    chain = [{"id": image_id(1), "Tag": "latest"}]
    for _ in range(2):
        step1 = alice.put_repository("alice/app", chain)
        assert step1.status_code == 200
        assert alice.validate("alice/app", step1.headers["X-Docker-Token"]).status_code == 200
        assert alice.put_images("alice/app", []).status_code == 204


def test_anonymous_pull_request_by_request(alice, client):
    chain = [{"id": image_id(1)}, {"id": image_id(2), "Tag": "latest"}]
    assert alice.put_repository("alice/app", chain).status_code == 200
    assert alice.put_images("alice/app", []).status_code == 204
    registry = FakeRegistry(client)

    step1 = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"})
    assert step1.status_code == 200
    listed = step1.get_json()
    assert isinstance(listed, list) and [item["id"] for item in listed] == [image_id(1), image_id(2)]
    tokens = step1.headers.getlist("X-Docker-Token")
    assert tokens and ',access=read' in tokens[0]
    assert step1.headers.getlist("X-Docker-Endpoints") == ["localhost"]
    authorization = "Token " + ",".join(tokens)
    # tags, ancestry, json and layer of both images: each re-validated with the same token.
    for _ in range(1 + 3 * len(chain)):
        assert registry.check("GET", "alice/app", authorization) == [image_id(1), image_id(2)]
    # The read token cannot write.
    assert registry.check("PUT", "alice/app", authorization) is None


def test_pull_of_a_missing_repository_is_404(client):
    response = client.get("/v1/repositories/alice/nothing/images", headers={"X-Docker-Token": "true"})
    assert response.status_code == 404          # 1.5: "Error: image alice/nothing:latest not found"


def test_library_pull_with_bare_and_prefixed_names(alice, client):
    assert alice.put_repository("busybox", [{"id": image_id(1), "Tag": "latest"}], auth=ADMIN).status_code == 200
    registry = FakeRegistry(client)
    for remote in ("busybox", "library/busybox"):           # private index vs official 1.3+ form
        step1 = client.get(f"/v1/repositories/{remote}/images", headers={"X-Docker-Token": "true"})
        assert step1.status_code == 200
        authorization = "Token " + step1.headers["X-Docker-Token"]
        assert registry.check("GET", "busybox", authorization) == [image_id(1)]
        assert registry.check("GET", "library/busybox", authorization) == [image_id(1)]


def test_search_request_by_request(alice, client):
    assert alice.put_repository("alice/web", [{"id": image_id(1)}]).status_code == 200
    assert alice.put_repository("busybox", [{"id": image_id(2)}], auth=ADMIN).status_code == 200
    # docker 1.5: url.QueryEscape, X-Docker-Token: true, Basic when logged in.
    response = client.get("/v1/search?q=web", headers={"X-Docker-Token": "true", **basic("alice", "secret1")})
    assert response.status_code == 200
    body = response.get_json()
    # Decode as Go would, strictly typed.
    assert isinstance(body["query"], str) and type(body["num_results"]) is int
    (result,) = body["results"]
    assert result["name"] == "alice/web"
    assert type(result["star_count"]) is int
    assert all(type(result[key]) is bool for key in ("is_official", "is_trusted", "is_automated"))
    anonymous = client.get("/v1/search?q=busybox")               # 0.7: no auth headers at all
    assert [r["name"] for r in anonymous.get_json()["results"]] == ["library/busybox"]  # as docker-registry 0.9 lists it


def test_delete_request_by_request(alice, client, store):
    """docs/protocol.md 8: DELETE (202 + delete token) -> registry DELETE validated -> DELETE confirm (200)."""
    assert alice.put_repository("alice/app", [{"id": image_id(1), "Tag": "latest"}]).status_code == 200
    registry = FakeRegistry(client)
    step1 = client.delete("/v1/repositories/alice/app/", headers={**basic("alice", "secret1"), "X-Docker-Token": "true"})
    assert step1.status_code == 202
    token = step1.headers["X-Docker-Token"]
    assert token.endswith(',repository="alice/app",access=delete')
    assert step1.headers["WWW-Authenticate"] == f"Token {token}"
    assert step1.headers.getlist("X-Docker-Endpoints") == ["localhost"]
    # Step 2/3: the registry's DELETE, checked both ways the protocol knows.
    assert registry.check("DELETE", "alice/app", f"Token {token}") == [image_id(1)]
    auth = client.put("/v1/repositories/alice/app/auth", headers={"Authorization": f"Token {token}"})
    assert (auth.status_code, auth.data) == (200, b'"OK"')
    # Meanwhile nobody can pull it.
    assert client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"}).status_code == 404
    # Step 4: confirm with Basic and the endpoints.
    step4 = client.delete("/v1/repositories/alice/app/",
                          headers={**basic("alice", "secret1"), "X-Docker-Endpoints": "localhost"})
    assert step4.status_code == 200
    assert store.get_repository("alice", "app") is None
    assert registry.check("DELETE", "alice/app", f"Token {token}") is None
