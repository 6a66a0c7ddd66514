"""Sending one plain-text message over SMTP (``INDEX_SMTP_*``)."""
from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

SMTP_TIMEOUT_SECONDS = 10


def smtp_configured(config: Mapping[str, Any]) -> bool:
    return bool(config["SMTP_HOST"])


def send(config: Mapping[str, Any], to: str, subject: str, body: str) -> None:
    """Deliver the message or raise ``OSError``/``smtplib.SMTPException``."""
    message = EmailMessage()
    message["From"] = config["SMTP_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    connection, context = _connect(config, SMTP_TIMEOUT_SECONDS)
    with connection:
        if config["SMTP_SECURITY"] == "starttls":
            # Refuse to go on in clear text: the server must offer STARTTLS.
            connection.starttls(context=context)
        if config["SMTP_USERNAME"]:
            connection.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        connection.send_message(message)


def _connect(config: Mapping[str, Any], timeout: float) -> tuple[smtplib.SMTP, ssl.SSLContext]:
    """A connection to the configured server (TLS from the first byte with ``ssl``), and the
    TLS context that a STARTTLS on it is to use."""
    host, port = config["SMTP_HOST"], config["SMTP_PORT"]
    context = ssl.create_default_context()
    if config["SMTP_SECURITY"] == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context), context
    return smtplib.SMTP(host, port, timeout=timeout), context


PROBE_TIMEOUT_SECONDS = 5


def probe(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Ask the mail server what a registration in ``confirm`` mode would meet, without sending.

    Connects, greets, does what ``send`` does up to the message (STARTTLS, login), and quits.
    Returns (whether activation mail would go out, one sentence saying what will happen).
    """
    if not smtp_configured(config):
        return False, ("INDEX_REGISTRATION=confirm without INDEX_SMTP_HOST: activation links are only "
                       "written to this log, for an administrator to forward")
    host, port, security = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_SECURITY"]
    where = f"{host}:{port}"
    fallback = "registrations will get their activation link only in this log"
    try:
        connection, context = _connect(config, PROBE_TIMEOUT_SECONDS)
        with connection:
            connection.ehlo_or_helo_if_needed()
            if security == "starttls":
                if not connection.has_extn("starttls"):
                    return False, (f"mail server {where} does not offer STARTTLS, which "
                                   f"INDEX_SMTP_SECURITY=starttls requires: {fallback}. For a plain "
                                   f"LAN relay set INDEX_SMTP_SECURITY=none (and INDEX_SMTP_PORT=25)")
                connection.starttls(context=context)
            if config["SMTP_USERNAME"]:
                connection.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
    except smtplib.SMTPAuthenticationError:
        return False, f"mail server {where} refuses INDEX_SMTP_USERNAME/INDEX_SMTP_PASSWORD: {fallback}"
    except (OSError, smtplib.SMTPException) as exc:
        return False, f"mail server {where} ({security}) cannot be used ({exc or type(exc).__name__}): {fallback}"
    login = ", login accepted" if config["SMTP_USERNAME"] else ""
    return True, f"mail server {where} ready ({security}{login}): activation links will be mailed"


def log_probe(config: Mapping[str, Any]) -> None:
    """At start, in confirm mode: one line saying whether activation mail will work."""
    if config["REGISTRATION"] != "confirm":
        return
    ok, message = probe(config)
    logging.getLogger("index.mail").log(logging.INFO if ok else logging.WARNING, "%s", message)
