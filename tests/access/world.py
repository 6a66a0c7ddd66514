"""A world of callers around organization ``acme`` (issue 12), built in-process.

Repositories (new ones private by default): ``acme/app`` (private) and ``acme/pub`` (public),
each pushed with its own two-image chain. Callers and what they get on both:

    anonymous, bobby (stranger), cody (team creator), acme+none (robot): nothing on app
    rita (user grant read), mira (team devs, granted read), acme+reader   read
    wendy (user grant write), acme+writer                                write
    adam (user grant admin), acme+boss, tara (team admin), olga (owner), admin   admin
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from index import create_app
from tests.conftest import ADMIN, basic, image_id
from tests.registry.layers import Layer, chain

PASSWORD = "secret1"
USERS = ["alice", "bobby", "rita", "wendy", "adam", "mira", "cody", "tara", "olga"]
READ, WRITE, ADMIN_ROLE = 1, 2, 3


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    role_app: int | None            # expected role on acme/app (private)
    role_pub: int | None            # on acme/pub (public)
    anonymous: bool = False
    robot: bool = False
    credentials: tuple[str, str] | None = None


@dataclass
class World:
    client: Any
    app: Any
    layers: dict[str, list[Layer]]
    robot_tokens: dict[str, str] = field(default_factory=dict)
    callers: dict[str, Caller] = field(default_factory=dict)

    def api(self, method: str, path: str, who: str | tuple[str, str] | None = None, body: Any = None):
        headers = self.headers_of(who)
        data = json.dumps(body) if body is not None else None
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, data=data,
                                content_type="application/json" if data is not None else None)

    def headers_of(self, who: str | tuple[str, str] | None) -> dict[str, str]:
        if who is None:
            return {}
        if isinstance(who, tuple):
            return basic(*who)
        return dict(self.callers[who].headers)


def call_json(client, method: str, path: str, headers: dict[str, str], value: Any = None):
    return client.open(path, method=method, headers=headers,
                       data=json.dumps(value) if value is not None else None,
                       content_type="application/json")


def push(client, auth_headers: dict[str, str], remote: str, layers: list[Layer]) -> None:
    """docker 1.x's push, request by request, in-process."""
    entries = [{"id": layer.image_id} for layer in layers]
    announced = call_json(client, "PUT", f"/v1/repositories/{remote}/", {**auth_headers, "X-Docker-Token": "true"}, entries)
    assert announced.status_code == 200, announced.get_data()
    token = {"Authorization": f"Token {announced.headers['X-Docker-Token']}"}
    for layer in layers:
        assert client.put(f"/v1/images/{layer.image_id}/json", data=layer.json_bytes, headers=token,
                          content_type="application/json").status_code == 200
        assert client.put(f"/v1/images/{layer.image_id}/layer", data=layer.body, headers=token,
                          content_type="application/octet-stream").status_code == 200
        assert client.put(f"/v1/images/{layer.image_id}/checksum", headers={
            **token, "X-Docker-Checksum": layer.tarsum,
            "X-Docker-Checksum-Payload": layer.payload_checksum}).status_code == 200
    assert call_json(client, "PUT", f"/v1/repositories/{remote}/tags/latest", token,
                     layers[-1].image_id).status_code == 200
    final = call_json(client, "PUT", f"/v1/repositories/{remote}/images",
                      {**auth_headers, "X-Docker-Endpoints": "http://localhost/v1/"}, [])
    assert final.status_code == 204


def build_world(tmp_path, **settings) -> World:
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "access-test",
                      "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
                      "LOGIN_FAILURES_PER_MINUTE": 0, **settings})
    client = app.test_client()
    for user in USERS:
        assert call_json(client, "POST", "/v1/users/", {}, {"username": user, "password": PASSWORD,
                                                             "email": f"{user}@example.com"}).status_code == 201
    world = World(client, app, {"app": chain([image_id(0xA00 + n) for n in range(2)], salt="app"),
                                "pub": chain([image_id(0xB00 + n) for n in range(2)], salt="pub")})
    olga = basic("olga", PASSWORD)
    assert world.api("POST", "/organization/", ("olga", PASSWORD), {"name": "acme", "email": "acme@example.com"}).status_code == 201
    for team, role, member in (("devs", "member", "mira"), ("builders", "creator", "cody"), ("ops", "admin", "tara")):
        assert world.api("PUT", f"/organization/acme/team/{team}", ("olga", PASSWORD), {"role": role}).status_code == 200
        assert world.api("PUT", f"/organization/acme/team/{team}/members/{member}", ("olga", PASSWORD)).status_code == 200
    for short in ("reader", "writer", "boss", "none"):
        made = world.api("PUT", f"/organization/acme/robots/{short}", ("olga", PASSWORD))
        assert made.status_code == 201, made.get_data()
        world.robot_tokens[f"acme+{short}"] = made.get_json()["token"]
    push(client, olga, "acme/app", world.layers["app"])
    push(client, olga, "acme/pub", world.layers["pub"])
    assert world.api("POST", "/repository/acme/pub/changevisibility", ("olga", PASSWORD),
                     {"visibility": "public"}).status_code == 200
    for repo in ("app", "pub"):
        for who, role in (("rita", "read"), ("wendy", "write"), ("adam", "admin"),
                          ("acme+reader", "read"), ("acme+writer", "write"), ("acme+boss", "admin")):
            answer = world.api("PUT", f"/repository/acme/{repo}/permissions/user/{who}", ("olga", PASSWORD), {"role": role})
            assert answer.status_code == 200 and answer.get_json() == {"name": who, "role": role}
        assert world.api("PUT", f"/repository/acme/{repo}/permissions/team/devs", ("olga", PASSWORD),
                         {"role": "read"}).status_code == 200

    def user(name: str, app_role: int | None, pub_role: int | None) -> Caller:
        return Caller(name, basic(name, PASSWORD), app_role, pub_role, credentials=(name, PASSWORD))

    def robot(name: str, app_role: int | None, pub_role: int | None) -> Caller:
        token = world.robot_tokens[name]
        return Caller(name, basic(name, token), app_role, pub_role, robot=True, credentials=(name, token))

    for caller in (
        Caller("anonymous", {}, None, READ, anonymous=True),
        user("alice", None, READ), user("bobby", None, READ), user("cody", None, READ),
        user("rita", READ, READ), user("mira", READ, READ),
        user("wendy", WRITE, WRITE), user("adam", ADMIN_ROLE, ADMIN_ROLE),
        user("tara", ADMIN_ROLE, ADMIN_ROLE), user("olga", ADMIN_ROLE, ADMIN_ROLE),
        Caller("admin", basic(*ADMIN), ADMIN_ROLE, ADMIN_ROLE, credentials=ADMIN),
        robot("acme+none", None, READ), robot("acme+reader", READ, READ),
        robot("acme+writer", WRITE, WRITE), robot("acme+boss", ADMIN_ROLE, ADMIN_ROLE),
    ):
        world.callers[caller.name] = caller
    return world

