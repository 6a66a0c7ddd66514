"""The OpenAPI document is the contract: every route of the app is in it, and it is well formed."""
from __future__ import annotations

import re

from index import openapi

IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # Werkzeug adds them to every GET/any rule
SKIPPED_ENDPOINTS = {"static"}
# The web interface's pages (index/web) are HTML for browsers, not API: tests/web covers them.
SKIPPED_BLUEPRINTS = ("web.",)
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def app_routes(app) -> set[tuple[str, str]]:
    """(path in OpenAPI form, METHOD) for every rule of the app, ``<ns>`` written ``{ns}``."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS or rule.endpoint.startswith(SKIPPED_BLUEPRINTS):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes.update((path, method) for method in (rule.methods or set()) - IMPLICIT_METHODS)
    return routes


def documented(document) -> dict[tuple[str, str], dict]:
    return {(path, method.upper()): operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


def _shape(path: str) -> str:
    """A path with its parameter names erased, so that ``{id}`` and ``{image_id}`` compare equal."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_of_the_app_is_documented(app):
    documented_shapes = {(_shape(path), method) for path, method in documented(openapi.document())}
    missing = sorted(route for route in app_routes(app) if (_shape(route[0]), route[1]) not in documented_shapes)
    assert missing == [], f"routes missing from the OpenAPI document: {missing}"


def test_every_documented_index_operation_is_served(app):
    served = {(_shape(path), method) for path, method in app_routes(app)}
    operations = documented(openapi.document())
    index_ops = [key for key, op in operations.items() if "index" in op["tags"]]
    assert sorted(key for key in index_ops if (_shape(key[0]), key[1]) not in served) == []
    # The registry is all there or not there yet (a separate package); never half documented.
    registry_ops = [key for key, op in operations.items() if "registry" in op["tags"]]
    served_registry = [key for key in registry_ops if (_shape(key[0]), key[1]) in served]
    assert registry_ops
    if served_registry:
        assert sorted(set(registry_ops) - set(served_registry)) == []


def test_the_served_document_is_the_built_one(client):
    answer = client.get("/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.get_json() == openapi.document()
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_document_is_well_formed():
    document = openapi.document()
    assert document["openapi"].startswith("3.0")
    schemes = document["components"]["securitySchemes"]
    for (path, method), operation in documented(document).items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert names == declared, (method, path)
        assert operation["responses"], (method, path)
        assert operation["tags"] and set(operation["tags"]) <= {"index", "registry", "operations"}
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(schemes)
        for status in operation["responses"]:
            assert re.fullmatch(r"[1-5](\d\d|XX)|default", status), status


def test_the_route_check_catches_a_missing_route(app):
    """The coverage test must be able to fail: an undocumented rule shows up as missing."""
    app.add_url_rule("/v1/undocumented/<thing>", "undocumented", lambda thing: "", methods=["POST"])
    documented_shapes = {(_shape(path), method) for path, method in documented(openapi.document())}
    missing = [route for route in app_routes(app) if (_shape(route[0]), route[1]) not in documented_shapes]
    assert missing == [("/v1/undocumented/{thing}", "POST")]
