"""Sending one plain-text message over SMTP (``INDEX_SMTP_*``)."""
from __future__ import annotations

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
    host, port, security = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_SECURITY"]
    context = ssl.create_default_context()
    if security == "ssl":
        connection: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS,
                                                    context=context)
    else:
        connection = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
    with connection:
        if security == "starttls":
            # Refuse to go on in clear text: the server must offer STARTTLS.
            connection.starttls(context=context)
        if config["SMTP_USERNAME"]:
            connection.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        connection.send_message(message)
