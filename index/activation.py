"""Registration policies beyond ``open``: activation links (``confirm``) and admin approval.

An activation link is ``<scheme>://<INDEX_PUBLIC_HOST>/account/activate?token=<signed>`` (never the
request's Host header, which the registering client chose; ``confirm`` does not start without
that setting): the username signed (:class:`index.tokens.ActivationLinks`) with the secret key
(older keys from ``INDEX_SECRET_KEY_FALLBACKS`` still verify) and valid for
``INDEX_ACTIVATION_TTL`` seconds. The token travels in the query string, which the request log
never writes.
"""
from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import events, mail
from .errors import BadRequest, NotFound
from .services import services
from .store import RecordNotFound

log = logging.getLogger(__name__)
bp = Blueprint("activation", __name__)

ACTIVATE_PATH = "/account/activate"


def after_registration(username: str, email: str) -> None:
    """Tell the new user (confirm) or the administrator (approval) what happens next."""
    config = current_app.config
    policy = config["REGISTRATION"]
    if policy == "approval":
        log.info("account %s awaits approval: docker-index users activate %s", username, username)
    elif policy == "confirm":
        user = services().store.find_user(username)
        account_id = str(user.get("account_id") or "") if user is not None else ""
        _send_link(config, username, email, _link_for(services().activation.token_for(username, account_id)))


def _public_host() -> str:
    host = current_app.config["PUBLIC_HOST"]
    if not host:  # config refuses confirm without it; never fall back to the Host header
        raise RuntimeError("INDEX_PUBLIC_HOST is not set")
    return str(host)


def _link_for(token: str) -> str:
    host = _public_host()
    # script_root: the prefix a proxy mounts the index under (X-Forwarded-Prefix), if any.
    return f"{request.scheme}://{host}{request.script_root}{ACTIVATE_PATH}?token={token}"


def _send_link(config: Mapping[str, Any], username: str, email: str, link: str) -> None:
    body = (f"Hello {username},\n\nan account was registered with this e-mail address on the "
            f"Docker index at {_public_host()}.\nOpen this link to activate it:\n\n{link}\n\n"
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
    username, account_id = services().activation.account_of(token)
    try:
        first_time = services().store.confirm_user(username, account_id)
    except RecordNotFound:  # the account was deleted after the link was sent
        raise NotFound(f"user {username} no longer exists") from None
    if first_time:
        events.record("activate", user=username, account=username, via="link")
    host = current_app.config["PUBLIC_HOST"] or request.host  # an answer to this caller only
    text = (f"Account {username} is active. Log in with: docker login {host}\n" if first_time
            else f"Account {username} was already confirmed; if it is inactive, an administrator deactivated it.\n")
    return Response(text, status=200, mimetype="text/plain")
