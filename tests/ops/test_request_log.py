"""One log line per request, plain or JSON, and no secret in the log of a whole docker session."""
from __future__ import annotations

import json
import re

import pytest

from index.testing import running_index
from tests.conftest import basic
from tests.processes import http_call

PASSWORD = "Pa55-word-xyz"
SECRET_KEY = "the-secret-signing-key-0123456789"
PLAIN_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<client>\S+) (?P<user>\S+) (?P<method>[A-Z]+) "
    r"(?P<path>/\S*) (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<ms>\d+(\.\d+)?)ms$")


def _call(index, method, path, body=None, headers=None):
    return http_call(index.url, method, path, body, headers)


def _docker_session(index) -> list[str]:
    """register, login (also a wrong one), push, registry token checks, pull, delete; the secrets seen."""
    alice = basic("alice", PASSWORD)
    repo = "/v1/repositories/alice/app"
    assert _call(index, "POST", "/v1/users/", {"username": "alice", "password": PASSWORD,
                                               "auth": "", "email": "alice@example.com"})[0] == 201
    assert _call(index, "GET", "/v1/users/", headers=alice)[0] == 200
    assert _call(index, "GET", "/v1/users/", headers=basic("alice", "wrong-" + PASSWORD))[0] == 401
    status, headers, _ = _call(index, "PUT", f"{repo}/", [{"id": "e" * 64, "Tag": "latest"}],
                               {**alice, "X-Docker-Token": "true"})
    assert status == 200
    write_token = headers["X-Docker-Token"]
    assert _call(index, "GET", f"{repo}/images", headers={"Authorization": f"Token {write_token}"})[0] == 200
    assert _call(index, "PUT", f"{repo}/images", [], {**alice, "X-Docker-Token": "true",
                                                     "X-Docker-Endpoints": index.url + "/v1/"})[0] == 204
    status, headers, _ = _call(index, "GET", f"{repo}/images", headers={**alice, "X-Docker-Token": "true"})
    read_token = headers["X-Docker-Token"]
    assert _call(index, "GET", f"{repo}/images", headers={"Authorization": f"Token {read_token}"})[0] == 200
    status, headers, _ = _call(index, "DELETE", f"{repo}/", headers={**alice, "X-Docker-Token": "true"})
    assert status == 202
    delete_token = headers["X-Docker-Token"]
    admin = basic(index.admin_username, index.admin_password)
    assert _call(index, "GET", "/v1/users/", headers=admin)[0] == 200
    secrets = [PASSWORD, SECRET_KEY, index.admin_password, alice["Authorization"].split()[1],
               admin["Authorization"].split()[1], "old-rotated-key"]
    for token in (write_token, read_token, delete_token):
        secrets.append(token)
        secrets.append(token.split(",")[0].split("=", 1)[1])  # the signature alone
    return secrets


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_no_secret_reaches_the_log_of_a_whole_docker_session(capsys, log_format):
    settings = {"SECRET_KEY": SECRET_KEY, "SECRET_KEY_FALLBACKS": "old-rotated-key", "LOG_FORMAT": log_format}
    with running_index(settings) as index:
        secrets = _docker_session(index)
    log = capsys.readouterr().err
    assert "PUT /v1/repositories/alice/app/" in log or '"path":"/v1/repositories/alice/app/"' in log
    for secret in secrets:
        assert secret not in log
    assert "Basic " not in log and "Token " not in log and "signature=" not in log


def test_plain_lines_have_every_field(capsys):
    with running_index({"LOG_FORMAT": "plain"}) as index:
        _docker_session(index)
    lines = [line for line in capsys.readouterr().err.splitlines() if PLAIN_LINE.match(line)]
    fields = [PLAIN_LINE.match(line).groupdict() for line in lines]
    assert len(fields) == 10  # exactly one line per request
    assert {f["client"] for f in fields} == {"127.0.0.1"}
    register, login, wrong, push = fields[:4]
    assert (register["user"], register["method"], register["path"], register["status"]) == \
        ("-", "POST", "/v1/users/", "201")
    assert (login["user"], login["status"]) == ("alice", "200")
    assert (wrong["user"], wrong["status"]) == ("-", "401")
    assert (push["user"], push["method"], push["path"], push["bytes"]) == \
        ("alice", "PUT", "/v1/repositories/alice/app/", "2")
    assert fields[4]["user"] == "alice"  # the registry's token check acts for the token's user
    assert fields[-1]["user"] == "admin"


def test_json_lines(capsys):
    with running_index({"LOG_FORMAT": "json"}) as index:
        _docker_session(index)
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    requests = [entry for entry in entries if "method" in entry]
    assert len(requests) == 10
    assert set(requests[3]) == {"time", "client", "user", "method", "path", "status", "bytes", "duration_ms"}
    assert requests[3]["status"] == 200 and requests[3]["user"] == "alice"
    assert isinstance(requests[3]["duration_ms"], float)
    start = [entry for entry in entries if "created admin account" in entry.get("message", "")]
    assert start and start[0]["level"] == "INFO" and start[0]["logger"] == "index"
    failed = [entry for entry in entries if entry.get("message", "").startswith("failed login")]
    assert failed and failed[0]["level"] == "INFO"


def test_paths_are_escaped_so_a_line_stays_one_line(capsys):
    with running_index() as index:
        _call(index, "GET", "/v1/x%0Afake%20line%22")
    lines = [line for line in capsys.readouterr().err.splitlines() if " GET " in line]
    assert len(lines) == 1
    assert "/v1/x%0Afake%20line%22 404" in lines[0]
