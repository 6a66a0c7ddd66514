"""Admin commands that show and change what matters: repository details, key rotation, failed-login logs."""
from __future__ import annotations

import json
import logging
import time

import pytest

from index import create_app, secrets
from index.services import EXTENSION_KEY
from index.tokens import TokenError
from tests.conftest import basic, image_id
from tests.registry.layers import chain
from tests.registry.test_routes import Pusher


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()
    return lambda *args, input=None: runner.invoke(args=list(args), input=input)


# -- repositories list / show -------------------------------------------------------------------
def test_list_and_show_give_tags_images_size_state_and_last_push(cli, client, alice):
    pusher = Pusher(client, "alice/app", chain([image_id(1), image_id(2)], salt="summary"))
    pusher.upload_all()
    for tag, target in (("latest", image_id(2)), ("v1", image_id(1))):
        assert client.put(f"/v1/repositories/alice/app/tags/{tag}", data=json.dumps(target),
                          headers=pusher.token, content_type="application/json").status_code == 200
    size = sum(len(layer.body) for layer in pusher.layers)
    # A second repository whose push broke at the checksum: stored layer, never confirmed.
    broken = Pusher(client, "alice/broken", chain([image_id(3)], salt="broken"))
    assert broken.put_json(broken.layers[0]).status_code == 200
    assert broken.put_layer(broken.layers[0]).status_code == 200
    assert broken.put_checksum(broken.layers[0], tarsum="tarsum+sha256:" + "0" * 64).status_code == 400

    listed = cli("repositories", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.output.splitlines()[1:]}
    assert rows["alice/app"].split()[1:3] == ["active", "2"]
    assert rows["alice/app"].endswith("latest, v1")
    assert f"{size} B" in rows["alice/app"] or "KiB" in rows["alice/app"]
    assert "(1 incomplete)" in rows["alice/broken"] and "(1 incomplete)" not in rows["alice/app"]

    shown = cli("repositories", "show", "alice/app").output
    assert "stored size: " in shown and f"({size} bytes)" in shown
    assert f"  latest                   {image_id(2)}" in shown
    assert f"  v1                       {image_id(1)}" in shown
    assert "images:      2\n" in shown and "[" not in shown.split("images:")[1]
    last_push = [line for line in shown.splitlines() if line.startswith("last push:")][0]
    assert last_push.split()[-1].startswith(time.strftime("%Y-", time.gmtime()))

    shown_broken = cli("repositories", "show", "alice/broken").output
    assert "images:      1 (1 incomplete)" in shown_broken
    assert f"{image_id(3)}" in shown_broken and "[LAYER]" in shown_broken
    assert "last push:   -" in shown_broken


# -- rotate-key ---------------------------------------------------------------------------------
@pytest.fixture
def generated_key_settings(tmp_path):
    # No SECRET_KEY: the key is generated into the data dir, which rotate-key replaces.
    return {"TESTING": True, "DATA_DIR": tmp_path / "data", "BCRYPT_ROUNDS": 4}


def test_rotate_key_keeps_old_tokens_valid_until_they_expire(generated_key_settings):
    before = create_app(generated_key_settings)
    data_dir = generated_key_settings["DATA_DIR"]
    old_key = (data_dir / "secret_key").read_text()
    token = before.extensions[EXTENSION_KEY].signer.issue("alice/app", "read", "alice")

    result = before.test_cli_runner().invoke(args=["rotate-key", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Restart the server" in result.output
    new_key = (data_dir / "secret_key").read_text()
    assert new_key != old_key and len(new_key) >= 32
    assert oct((data_dir / secrets.FALLBACKS_FILE).stat().st_mode & 0o777) == "0o600"

    after = create_app(generated_key_settings)   # the restarted server
    signer = after.extensions[EXTENSION_KEY].signer
    assert signer.verify(token).user == "alice"   # signed with the old key: still valid
    # Once every token of the old key has expired, the old key is dropped.
    ttl = max(after.config["TOKEN_TTL"], after.config["ACTIVATION_TTL"])
    assert secrets.stored_fallbacks(data_dir, now=time.time() + ttl - 60) == [old_key]
    assert secrets.stored_fallbacks(data_dir, now=time.time() + ttl + 60) == []


def test_rotating_twice_keeps_both_old_keys(generated_key_settings):
    app = create_app(generated_key_settings)
    data_dir = generated_key_settings["DATA_DIR"]
    keys = [(data_dir / "secret_key").read_text()]
    for _ in range(2):
        assert app.test_cli_runner().invoke(args=["rotate-key", "--yes"]).exit_code == 0
        keys.append((data_dir / "secret_key").read_text())
    assert secrets.stored_fallbacks(data_dir) == [keys[1], keys[0]]


def test_rotate_key_refuses_a_key_from_the_environment(cli):
    result = cli("rotate-key", "--yes")   # the test app has SECRET_KEY set
    assert result.exit_code == 1
    assert "the key comes from INDEX_SECRET_KEY" in result.output


def test_a_token_of_a_dropped_key_is_refused(generated_key_settings):
    before = create_app(generated_key_settings)
    token = before.extensions[EXTENSION_KEY].signer.issue("alice/app", "read", "alice")
    data_dir = generated_key_settings["DATA_DIR"]
    secrets.rotate_key(data_dir, keep_old_for=-1)   # already past its time
    after = create_app(generated_key_settings)
    with pytest.raises(TokenError):
        after.extensions[EXTENSION_KEY].signer.verify(token)


# -- logs you can follow ------------------------------------------------------------------------
def test_a_failed_login_names_the_username_escaped(client, alice, caplog):
    caplog.set_level(logging.INFO, logger="index")
    assert client.get("/v1/users/", headers=basic("alice", "wrong")).status_code == 401
    assert client.get("/v1/users/", headers=basic("evil\nINFO forged line", "x")).status_code == 401
    failed = [record.getMessage() for record in caplog.records if record.getMessage().startswith("failed login")]
    assert failed == ["failed login for user alice from 127.0.0.1",
                      "failed login for user evil%0AINFO%20forged%20line from 127.0.0.1"]


def test_a_lockout_is_one_warning(settings, caplog):
    app = create_app({**settings, "LOGIN_FAILURES_PER_MINUTE": 3})
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="index")
    statuses = [client.get("/v1/users/", headers=basic("mallory", f"guess{n}"),
                           environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code for n in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == ["login locked out for address 10.9.9.9 after 3 failed logins in 60 s (this worker)",
                        "login locked out for username mallory after 3 failed logins in 60 s (this worker)"]
