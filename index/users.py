"""Accounts: register, check a login, update (seed 2.2; protocol.md section 6)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from . import activation, auth, names, principals
from .errors import BadRequest, Forbidden, Unauthorized
from .accounts import create_account
from .passwords import hash_password
from .payloads import JSON, empty_response, json_response, read_json
from .services import services
from .store import AlreadyExists, LimitReached

bp = Blueprint("users", __name__)

# docker login compares this body byte for byte (a JSON string, no newline) and then tries GET.
ALREADY_EXISTS_BODY = '"Username or email already exists"'


def _already_exists() -> Response:
    return Response(ALREADY_EXISTS_BODY, status=400, mimetype=JSON)


def _json_object(purpose: str) -> dict[str, Any]:
    data = read_json()
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object with {purpose}")
    return data


@bp.post("/v1/users")
@bp.post("/v1/users/")
def register() -> Response:
    data = _json_object("username, password and email")
    found = services()
    claimed = data.get("username")
    # Before any other check: an existing user running `docker login` must fall through to GET.
    if isinstance(claimed, str) and names.USERNAME_RE.fullmatch(claimed) and found.store.find_user(claimed):
        return _already_exists()
    # A robot's `docker login -u acme+ci -p <token>` too (it then logs in with Basic).
    if isinstance(claimed, str) and "+" in claimed and principals.find(claimed) is not None:
        return _already_exists()
    if current_app.config["REGISTRATION"] == "closed":
        raise Unauthorized("registration is closed: ask an administrator for an account")
    policy = current_app.config["REGISTRATION"]
    # Valid requests count before bcrypt and the write: a flood of registrations is refused (429)
    # cheaply. (create_account checks the values again; an invalid one is a 400 and not counted.)
    names.username(claimed), names.password(data.get("password")), names.email(data.get("email"))
    found.registration_throttle.count(request.remote_addr or "")
    try:
        # confirm/approval: inactive (403 on every call) until the link or an admin activates it.
        user = create_account(found.store, claimed, data.get("password"), data.get("email"),
                              active=policy == "open", bcrypt_rounds=current_app.config["BCRYPT_ROUNDS"])
    except AlreadyExists:
        return _already_exists()
    username, email = user["username"], user["emails"][0]
    if policy != "open":
        activation.after_registration(username, email)
    return json_response("User Created", 201)


@bp.get("/v1/users")
@bp.get("/v1/users/")
def check_login() -> Response:
    auth.require_user()
    return json_response("OK")


@bp.put("/v1/users/<username>/", strict_slashes=False)
def update_user(username: str) -> Response:
    caller = auth.require_user()
    if caller.get("robot"):
        raise Forbidden("a robot account has no password or e-mail to change; regenerate its token")
    if caller["username"] != username and not caller.get("admin"):
        raise Forbidden("you may only change your own account")
    data = _json_object("email and/or password")
    unknown = set(data) - {"email", "password"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}; expected email and/or password")
    if not data:
        raise BadRequest("nothing to change: give an email and/or a password")
    email = names.email(data["email"]) if "email" in data else None
    password = names.password(data["password"]) if "password" in data else None
    found = services()
    password_hash = hash_password(password, current_app.config["BCRYPT_ROUNDS"]) if password is not None else None
    try:
        found.store.update_user(username, password_hash=password_hash, add_email=email,
                                max_emails=current_app.config["MAX_EMAILS_PER_ACCOUNT"])
    except LimitReached as exc:
        raise BadRequest(f"account {username} already has {exc.limit} e-mail addresses, the most "
                         "one account may hold (INDEX_MAX_EMAILS_PER_ACCOUNT); nothing was changed") from None
    except AlreadyExists:  # answered 400 with its own message, not the generic 409
        raise BadRequest("email is already used by another account") from None
    return empty_response(204)
