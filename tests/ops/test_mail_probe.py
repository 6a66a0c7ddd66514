"""In confirm mode the server says at start whether activation mail will go out (a real SMTP server)."""
from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from index import mail
from index.config import load_config
from tests.ops.processes import serving
from tests.processes import free_port


class _Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture
def relay():
    """A plain LAN relay: SMTP without STARTTLS, like most of them."""
    controller = Controller(_Sink(), hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def _config(tmp_path, **settings):
    env = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_REGISTRATION": "confirm", "INDEX_PUBLIC_HOST": "index.lan",
           **{f"INDEX_{key}": str(value) for key, value in settings.items()}}
    return load_config(environ=env)


def test_a_relay_without_starttls_is_named_with_the_setting_that_fixes_it(tmp_path, relay):
    ok, message = mail.probe(_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=relay.port))
    assert ok is False
    assert message == (f"mail server 127.0.0.1:{relay.port} does not offer STARTTLS, which "
                       f"INDEX_SMTP_SECURITY=starttls requires: registrations will get their activation "
                       f"link only in this log. For a plain LAN relay set INDEX_SMTP_SECURITY=none "
                       f"(and INDEX_SMTP_PORT=25)")


def test_the_same_relay_with_security_none_is_ready(tmp_path, relay):
    ok, message = mail.probe(_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=relay.port, SMTP_SECURITY="none"))
    assert ok is True
    assert message == f"mail server 127.0.0.1:{relay.port} ready (none): activation links will be mailed"


def test_no_server_and_no_host_are_said_too(tmp_path):
    port = free_port()
    ok, message = mail.probe(_config(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none"))
    assert ok is False and message.startswith(f"mail server 127.0.0.1:{port} (none) cannot be used (")
    ok, message = mail.probe(_config(tmp_path))
    assert ok is False and "without INDEX_SMTP_HOST" in message


@pytest.mark.live
def test_serve_logs_the_probe_at_start(tmp_path, relay):
    settings = {"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_REGISTRATION": "confirm", "INDEX_PUBLIC_HOST": "index.lan",
                "INDEX_SMTP_HOST": "127.0.0.1", "INDEX_SMTP_PORT": str(relay.port), "INDEX_WORKERS": "1"}
    with serving(settings, tmp_path / "serve.log") as served:
        pass
    lines = [line for line in served.log().splitlines() if "index.mail" in line]
    assert len(lines) == 1 and " WARNING index.mail: " in lines[0] and "does not offer STARTTLS" in lines[0]


def test_other_policies_do_not_probe(tmp_path, caplog):
    caplog.set_level("INFO")
    config = load_config(environ={"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_SMTP_HOST": "127.0.0.1",
                                  "INDEX_SMTP_PORT": str(free_port())})
    mail.log_probe(config)
    assert caplog.records == []
