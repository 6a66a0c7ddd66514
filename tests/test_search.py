"""GET /v1/search (docs/protocol.md 7): shape, JSON types, matching, pagination, bad arguments."""
from __future__ import annotations

import json

import pytest

from index import create_app
from index.services import EXTENSION_KEY
from tests.conftest import ADMIN, DockerActions, basic, image_id

RESULT_TYPES = {"name": str, "description": str, "star_count": int, "is_official": bool,
                "is_trusted": bool, "is_automated": bool}


def shared_index(tmp_path_factory, name: str) -> DockerActions:
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path_factory.mktemp(name) / "data", "SECRET_KEY": "t",
                      "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
                      "DEFAULT_VISIBILITY": "public"})
    docker = DockerActions(app.test_client())
    assert docker.register("alice", "secret1").status_code == 201
    return docker


def fill(docker: DockerActions) -> DockerActions:
    for remote, auth in [("alice/app", ("alice", "secret1")), ("alice/web", ("alice", "secret1")),
                         ("busybox", ADMIN), ("tools/app-builder", ADMIN)]:
        assert docker.put_repository(remote, [{"id": image_id(1)}], auth=auth).status_code == 200
    store = docker.client.application.extensions[EXTENSION_KEY].store
    store.set_description("alice", "web", "A small Web Server for testing")
    return docker


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Read-only tests share one filled index (searching changes nothing)."""
    return fill(shared_index(tmp_path_factory, "search"))


@pytest.fixture
def repos(alice):
    """A filled index of the test's own, for tests that change it."""
    return fill(alice)


def names_of(response) -> list[str]:
    return [result["name"] for result in response.get_json()["results"]]


def test_empty_index(client):
    response = client.get("/v1/search?q=anything")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"query": "anything", "num_results": 0, "num_pages": 1, "page": 1,
                                   "page_size": 25, "results": []}


def test_result_shape_and_json_types(shared):
    body = shared.client.get("/v1/search?q=app").get_json()
    assert type(body["query"]) is str
    for key in ("num_results", "num_pages", "page", "page_size"):
        assert type(body[key]) is int, key
    assert body["results"]
    for result in body["results"]:
        assert set(result) == set(RESULT_TYPES)
        for key, kind in RESULT_TYPES.items():
            assert type(result[key]) is kind, key   # docker refuses "3" or 3.5 for star_count


def test_raw_bytes_have_no_floats_or_strings_for_numbers(shared):
    raw = shared.client.get("/v1/search?q=alice/app").data
    assert b'"star_count":0' in raw
    assert b'"is_official":false' in raw


@pytest.mark.parametrize("query,official", [("busybox", True), ("alice/app", False), ("tools/app-builder", False)])
def test_library_repositories_are_the_official_ones(shared, query, official):
    # As on the hub: the admin-curated library namespace is what docker search marks [OK].
    (result,) = shared.client.get("/v1/search", query_string={"q": query}).get_json()["results"]
    assert result["is_official"] is official
    assert result["is_trusted"] is False and result["is_automated"] is False


@pytest.mark.parametrize("query,expected", [
    ("app", ["alice/app", "tools/app-builder"]),
    ("APP", ["alice/app", "tools/app-builder"]),            # case-insensitive
    ("alice", ["alice/app", "alice/web"]),                  # namespace part of the name
    ("alice/web", ["alice/web"]),
    ("web server", ["alice/web"]),                          # description, "web+server" on the wire
    ("testing", ["alice/web"]),
    ("busybox", ["library/busybox"]),                       # library repos as docker-registry 0.9 lists them
    ("library/", ["library/busybox"]),
    ("nothing-like-this", []),
    ("", ["alice/app", "alice/web", "library/busybox", "tools/app-builder"]),
])
def test_matches_name_and_description(shared, query, expected):
    response = shared.client.get("/v1/search", query_string={"q": query})
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == query
    assert names_of(response) == expected
    assert body["num_results"] == len(expected)


def test_missing_q_is_everything(shared):
    assert shared.client.get("/v1/search").get_json()["num_results"] == 4


def test_plus_in_the_query_string_is_a_space(shared):
    response = shared.client.get("/v1/search?q=web+server")
    assert response.get_json()["query"] == "web server"
    assert names_of(response) == ["alice/web"]


def test_docker_headers_are_accepted(shared):
    response = shared.client.get("/v1/search?q=app", headers={"X-Docker-Token": "true", **basic("alice", "secret1")})
    assert response.status_code == 200
    assert "X-Docker-Token" not in response.headers


def test_repositories_being_deleted_are_hidden(repos, client, store):
    store.mark_deleting("alice", "app")
    assert names_of(client.get("/v1/search?q=app")) == ["tools/app-builder"]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    docker = shared_index(tmp_path_factory, "pages")
    for n in range(30):
        assert docker.put_repository(f"alice/repo{n:02d}", [{"id": image_id(n)}]).status_code == 200
    return docker


@pytest.mark.parametrize("args,page,page_size,count,first", [
    ("", 1, 25, 25, "alice/repo00"),
    ("&page=2", 2, 25, 5, "alice/repo25"),
    ("&page=3", 3, 25, 0, None),                        # beyond the end: empty page, not an error
    ("&n=10&page=3", 3, 10, 10, "alice/repo20"),
    ("&n=100", 1, 100, 30, "alice/repo00"),
    ("&n=1", 1, 1, 1, "alice/repo00"),
    ("&n=7&page=5", 5, 7, 2, "alice/repo28"),
    ("&n=&page=", 1, 25, 25, "alice/repo00"),           # empty values mean the defaults
])
def test_pagination(many, args, page, page_size, count, first):
    body = many.client.get(f"/v1/search?q=repo{args}").get_json()
    assert body["num_results"] == 30
    assert body["page"] == page
    assert body["page_size"] == page_size
    assert body["num_pages"] == -(-30 // page_size)
    assert len(body["results"]) == count
    if first:
        assert body["results"][0]["name"] == first


@pytest.mark.parametrize("args,message", [
    ("n=0", "n must be between 1 and 100"),
    ("n=101", "n must be between 1 and 100"),
    ("n=-5", "n must be a whole number written with the digits 0-9"),
    ("n=ten", "n must be a whole number"),
    ("n=2.5", "n must be a whole number"),
    ("n=" + "9" * 5000, "n must be a whole number"),
    ("page=0", "page must be at least 1"),
    ("page=-1", "page must be a whole number written with the digits 0-9"),
    ("page=first", "page must be a whole number"),
    ("q=" + "x" * 257, "q must be at most 256"),
])
def test_bad_arguments_are_400(client, args, message):
    response = client.get(f"/v1/search?{args}")
    assert response.status_code == 400
    assert message in response.get_json()["error"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_search_other_methods_are_405(client, method):
    response = getattr(client, method)("/v1/search")
    assert response.status_code == 405
    assert response.get_json()["error"]


def test_results_are_ranked_exact_prefix_substring_description(alice, docker, app, client):
    """Exact name first, then name prefix, then substring, then a description match;
    the same order for docker search and the web page."""
    from tests.conftest import image_id
    store = app.extensions["docker_index"].store
    for n, name in enumerate(["xtoolx", "toolbox", "tool", "hammer"]):
        assert docker.put_repository(f"alice/{name}", [{"id": image_id(n + 1)}]).status_code == 200
    store.set_description("alice", "hammer", "a tool for nails")
    names = [result["name"] for result in client.get("/v1/search?q=tool").get_json()["results"]]
    assert names == ["alice/tool", "alice/toolbox", "alice/xtoolx", "alice/hammer"]
    page = client.get("/search?q=tool").get_data(as_text=True)
    positions = [page.index(f'href="/repository/alice/{name}"') for name in ("tool", "toolbox", "xtoolx", "hammer")]
    assert positions == sorted(positions)


def test_ties_go_to_the_most_recently_active(alice, docker, app, client):
    from tests.conftest import image_id
    for n, name in enumerate(["app-one", "app-two", "app-three"]):
        assert docker.put_repository(f"alice/{name}", [{"id": image_id(n + 1)}]).status_code == 200
    docker.get_images("alice/app-two")  # a pull: app-two is the most recently active
    names = [result["name"] for result in client.get("/v1/search?q=app").get_json()["results"]]
    assert names == ["alice/app-two", "alice/app-one", "alice/app-three"]


@pytest.mark.parametrize("query", ["app", "web", "nothing-here", "", "ünïcode ✓", '"quoted"\\'])
def test_the_answer_is_byte_for_byte_the_compact_json_of_its_fields(repos, query):
    """The answer is put together from results kept as JSON text: the same bytes as dumping it whole."""
    store = repos.client.application.extensions[EXTENSION_KEY].store
    store.set_description("alice", "app", 'Ünïcode "quotes" \\ and \u2028 line separators')
    response = repos.client.get("/v1/search", query_string={"q": query})
    body = response.get_json()
    assert response.get_data(as_text=True) == json.dumps(body, separators=(",", ":"))
    assert list(body) == ["query", "num_results", "num_pages", "page", "page_size", "results"]
    assert body["query"] == query
