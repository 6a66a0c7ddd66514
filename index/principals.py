"""Who can act: login accounts and robot accounts (``<namespace>+<name>``).

A robot is handed to the rest of the index in the shape of an account record
(``username``, ``active``, ``admin``) plus ``"robot": True`` and its ``namespace``, so that
:mod:`index.permissions` and the token checks treat both alike.

Its password is a token derived from the secret key and a random nonce kept in its record
(HMAC-SHA256), so the data files never hold the token itself, yet the management API can show it
again; regenerating draws a new nonce, and the old token stops matching at once. Tokens derived
from an ``INDEX_SECRET_KEY_FALLBACKS`` key keep working until that key is removed.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from flask import current_app

from .names import NAMESPACE_RE, ValidationError
from .services import services
from .store.access import find_robot
from .store.records import Principal, RobotPrincipal, RobotRecord, is_robot

ROBOT_SHORT_RE = re.compile(r"[a-z][a-z0-9_]{1,29}")
NONCE_BYTES = 32
ROBOT_KEYS = "docker_index.robot_keys"


def is_robot_name(name: str) -> bool:
    namespace, plus, short = name.partition("+")
    return bool(plus) and bool(NAMESPACE_RE.fullmatch(namespace)) and bool(ROBOT_SHORT_RE.fullmatch(short))


def robot_short(value: Any) -> str:
    if not isinstance(value, str) or not ROBOT_SHORT_RE.fullmatch(value):
        raise ValidationError(f"invalid robot name {str(value)[:80]!r}: 2 to 30 characters of a-z, "
                              "0-9 and _, starting with a letter")
    return value


def install_keys(app: Any, secret_key: str, fallbacks: list[str]) -> None:
    """Remember the keys robot tokens are derived from (current first)."""
    app.extensions[ROBOT_KEYS] = [secret_key, *fallbacks]


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def _derive(key: str, name: str, nonce: str) -> str:
    message = f"docker-index.robot:{name}:{nonce}".encode()
    return hmac.new(key.encode("utf-8", "surrogatepass"), message, hashlib.sha256).hexdigest().upper()


def token_of(record: RobotRecord) -> str:
    """The robot's current token (what it logs in with)."""
    return _derive(current_app.extensions[ROBOT_KEYS][0], record["name"], record["nonce"])


GENERATION_CHARS = 12


def robot_principal(record: RobotRecord) -> RobotPrincipal:
    return {"username": record["name"], "robot": True, "namespace": record["namespace"],
            "active": True, "admin": False, "emails": [],
            "generation": record["nonce"][:GENERATION_CHARS]}


def token_subject(user: Principal | None) -> str | None:
    """Who an index token is issued to: the account's name; a robot's name with its token
    generation (``acme+ci#<12 hex>``), so that regenerating or deleting the robot also stops the
    index tokens it was handed (``find`` no longer resolves the old subject)."""
    if user is None:
        return None
    if is_robot(user):
        return f"{user['username']}#{user['generation']}"
    return user["username"]


def find(name: str) -> Principal | None:
    """The account or robot called ``name``, or None."""
    store = services().store
    if "+" in name:
        name, _, generation = name.partition("#")  # a token's subject (see token_subject)
        if not is_robot_name(name):
            return None
        record = find_robot(store, name)
        if record is None or (generation and record["nonce"][:GENERATION_CHARS] != generation):
            return None
        return robot_principal(record)
    return store.find_user(name)


def check_robot_token(name: str, token: str) -> RobotPrincipal | None:
    """The robot if ``token`` is its current token, else None."""
    record = find_robot(services().store, name) if is_robot_name(name) else None
    if record is None:
        return None
    offered = token.encode("utf-8", "surrogatepass")
    for key in current_app.extensions[ROBOT_KEYS]:
        if hmac.compare_digest(_derive(key, name, record["nonce"]).encode(), offered):
            return robot_principal(record)
    return None
