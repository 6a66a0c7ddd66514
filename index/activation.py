"""Registration policies beyond ``open``: activation links (``confirm``) and admin approval.

An activation link is ``<scheme>://<host>/account/activate?token=<signed>``: the username signed
with the secret key (older keys from ``INDEX_SECRET_KEY_FALLBACKS`` still verify) and valid for
``INDEX_ACTIVATION_TTL`` seconds. The token travels in the query string, which the request log
never writes.
"""
from __future__ import annotations

import logging
import smtplib
from typing import Any, Mapping, Sequence

from flask import Blueprint, Response, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from . import mail
from .errors import BadRequest, NotFound
from .services import services
from .store import NotFound as StoreNotFound

log = logging.getLogger(__name__)
bp = Blueprint("activation", __name__)

ACTIVATE_PATH = "/account/activate"
_SALT = "docker-index.activation"


class ActivationLinks:
    """Signs and checks the username carried by an activation link."""

    def __init__(self, secret_key: str, ttl_seconds: int, fallback_keys: Sequence[str] = ()) -> None:
        self._serializer = URLSafeTimedSerializer([*fallback_keys, secret_key], salt=_SALT)
        self.ttl_seconds = ttl_seconds

    def token_for(self, username: str) -> str:
        return self._serializer.dumps({"u": username})

    def username_of(self, token: str) -> str:
        """The username, or BadRequest when the token is tampered with or expired."""
        try:
            signed = self._serializer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired:
            raise BadRequest("this activation link has expired: register again or ask an administrator") from None
        except BadSignature:
            raise BadRequest("this activation link is not valid") from None
        if not isinstance(signed, dict) or not isinstance(signed.get("u"), str):
            raise BadRequest("this activation link is not valid")
        return signed["u"]


def after_registration(username: str, email: str) -> None:
    """Tell the new user (confirm) or the administrator (approval) what happens next."""
    found = services()
    policy = found.config["REGISTRATION"]
    if policy == "approval":
        log.info("account %s awaits approval: docker-index users activate %s", username, username)
    elif policy == "confirm":
        _send_link(found.config, username, email, _link_for(found.activation.token_for(username)))


def _link_for(token: str) -> str:
    host = services().config["PUBLIC_HOST"] or request.host
    # script_root: the prefix a proxy mounts the index under (X-Forwarded-Prefix), if any.
    return f"{request.scheme}://{host}{request.script_root}{ACTIVATE_PATH}?token={token}"


def _send_link(config: Mapping[str, Any], username: str, email: str, link: str) -> None:
    body = (f"Hello {username},\n\nan account was registered with this e-mail address on the "
            f"Docker index at {request.host}.\nOpen this link to activate it:\n\n{link}\n\n"
            f"The link stays valid for {config['ACTIVATION_TTL'] // 3600} hours. If you did not "
            f"register, ignore this message.\n")
    if not mail.smtp_configured(config):
        # No mail server configured: the log is the delivery channel the administrator forwards.
        log.info("activation link for %s <%s>: %s", username, email, link)
        return
    try:
        mail.send(config, email, "Activate your Docker index account", body)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("could not mail the activation link to %s <%s> (%s); the link is: %s",
                  username, email, exc, link)
        return
    log.info("activation link mailed to %s <%s>", username, email)


@bp.get(ACTIVATE_PATH)
def activate() -> Response:
    token = request.args.get("token", "")
    if not token:
        raise BadRequest("the activation link has no token")
    username = services().activation.username_of(token)
    try:
        first_time = services().store.confirm_user(username)
    except StoreNotFound:
        raise NotFound(f"user {username} no longer exists") from None
    text = (f"Account {username} is active. Log in with: docker login {request.host}\n" if first_time
            else f"Account {username} was already confirmed; if it is inactive, an administrator deactivated it.\n")
    return Response(text, status=200, mimetype="text/plain")
