"""The self-check against a live index, the certificate command, and the CLI entry points."""
from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner
from cryptography import x509

from index.ops.certs import cert_command
from index.ops.selfcheck import CHECKS, Check, CheckFailed, new_session, run_checks, self_check_command
from index.testing import running_index
from tests.processes import ROOT, clean_env


def test_self_check_passes_against_a_healthy_index():
    with running_index() as index:
        result = CliRunner().invoke(self_check_command, [index.url, "--username", "checker", "--password-stdin"],
                                    input="check-pass-1\n")
        store = index.app.extensions["docker_index"].store
        leftovers = list(store.iter_repositories("checker"))
    assert result.exit_code == 0, result.output
    # result.output also holds the in-process index's log lines (stderr): keep the report's lines.
    lines = [line for line in result.output.splitlines() if line.startswith(("PASS", "FAIL", "SKIP", "self-check"))]
    assert len(lines) == len(CHECKS) + 1
    for line, check in zip(lines, CHECKS, strict=False):
        assert line.startswith(f"PASS  {check.name}: ")
    assert lines[-1] == f"self-check of {index.url}: {len(CHECKS)} of {len(CHECKS)} steps passed"
    assert "check-pass-1" not in result.output and "signature=" not in result.output
    assert leftovers == []  # the throwaway repository is gone


def test_self_check_reports_a_refused_login_and_skips_the_rest():
    with running_index({"REGISTRATION": "closed"}) as index:
        result = CliRunner().invoke(self_check_command, [index.url, "--username", "stranger", "--password-stdin"],
                                    input="whatever-1\n")
    assert result.exit_code == 1
    assert "PASS  ping" in result.output
    assert "FAIL  login: wrong username or password" in result.output
    assert "SKIP  push: announce repository: needs login" in result.output
    assert result.stdout.splitlines()[-1].endswith("1 of 10 steps passed, 1 failed, 8 skipped")


def test_self_check_names_an_inactive_account():
    with running_index({"REGISTRATION": "approval"}) as index:
        result = CliRunner().invoke(self_check_command, [index.url, "--username", "newbie", "--password-stdin"],
                                    input="newbie-pass\n")
    assert result.exit_code == 1
    assert "FAIL  login: account newbie is not active" in result.output


def test_clean_up_runs_after_a_failed_step():
    def broken(session):
        raise CheckFailed("registry step failed")

    checks = list(CHECKS)
    after_commit = [check.name for check in checks].index("push: final image list") + 1
    checks.insert(after_commit, Check("registry: image layer", broken, needs=("push: final image list",)))
    with running_index() as index:
        session = new_session(index.url, index.admin_username, index.admin_password)
        out: list[str] = []
        assert run_checks(session, checks, echo=out.append) is False
        leftovers = list(index.app.extensions["docker_index"].store.iter_repositories(index.admin_username))
    assert "FAIL  registry: image layer: registry step failed" in out
    assert out[-2].startswith("PASS  delete throwaway repository")
    assert leftovers == []


def test_self_check_cannot_reach_a_closed_port():
    session = new_session("http://127.0.0.1:9", "someone", "pw-12345", timeout=2)
    out: list[str] = []
    assert run_checks(session, echo=out.append) is False
    assert out[0].startswith("FAIL  ping: cannot reach http://127.0.0.1:9")


def test_cert_command_writes_a_usable_certificate_and_says_how_to_trust_it(tmp_path):
    result = CliRunner().invoke(cert_command, ["--out", str(tmp_path / "certs"), "--host", "index.lan",
                                               "--host", "192.168.1.20", "--port", "5443"])
    assert result.exit_code == 0, result.output
    cert, key = tmp_path / "certs" / "cert.pem", tmp_path / "certs" / "key.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "/etc/docker/certs.d/index.lan:5443/ca.crt" in result.output
    assert f"INDEX_TLS_CERT={cert}" in result.output
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["index.lan"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["192.168.1.20"]
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)  # a matching pair


@pytest.mark.live
def test_flask_cli_entry_point_and_bad_settings(tmp_path):
    env = clean_env({"INDEX_DATA_DIR": str(tmp_path / "data")})
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    helped = subprocess.run([flask, "--app", "wsgi", "users", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "set-password" in helped.stdout
    assert "effective settings" not in helped.stderr   # only serve logs them
    bad = subprocess.run([sys.executable, "-m", "index", "users", "list"], cwd=ROOT,
                         env={**env, "INDEX_LOG_FORMAT": "yaml"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["error: INDEX_LOG_FORMAT: must be one of plain, json, got 'yaml'"]


def test_self_check_names_the_registry_url_it_could_not_reach():
    # The index advertises a registry endpoint nobody listens on: the failure must name it.
    with running_index({"REGISTRY_ENDPOINTS": "127.0.0.1:9"}) as index:
        session = new_session(index.url, "faraway", "far-pass-1", timeout=2)
        out: list[str] = []
        assert run_checks(session, echo=out.append) is False
    failed = [line for line in out if line.startswith("FAIL")]
    assert failed and "cannot reach http://127.0.0.1:9" in failed[0]
    assert f"cannot reach {index.url}" not in "\n".join(out)


def test_cleanup_removes_the_account_it_registered_and_keeps_an_existing_one():
    with running_index() as index:
        env = {"INDEX_DATA_DIR": str(index.app.config["DATA_DIR"])}
        store = index.app.extensions["docker_index"].store
        result = CliRunner().invoke(self_check_command, [index.url, "--username", "tempcheck", "--password-stdin",
                                                         "--cleanup"], input="check-pass-1\n", env=env)
        assert result.exit_code == 0, result.output
        assert "cleanup: removed account tempcheck (registered by this run)" in result.output
        assert store.find_user("tempcheck") is None
        again = CliRunner().invoke(self_check_command, [index.url, "--username", "tempcheck", "--password-stdin",
                                                        "--cleanup"], input="check-pass-1\n", env=env)
        assert again.exit_code == 0, again.output   # the name was released: the next run registers it
        kept = CliRunner().invoke(self_check_command, [index.url, "--username", index.admin_username,
                                                       "--password-stdin", "--cleanup"],
                                  input=index.admin_password + "\n", env=env)
        assert kept.exit_code == 0, kept.output
        assert f"cleanup: kept account {index.admin_username}" in kept.output
        assert store.find_user(index.admin_username) is not None
        assert list(store.iter_repositories(index.admin_username)) == []


def test_cleanup_without_the_data_dir_says_what_to_run(tmp_path):
    with running_index() as index:
        result = CliRunner().invoke(self_check_command, [index.url, "--username", "remote1", "--password-stdin",
                                                         "--cleanup"], input="check-pass-1\n",
                                    env={"INDEX_DATA_DIR": str(tmp_path / "elsewhere")})
        assert index.app.extensions["docker_index"].store.find_user("remote1") is not None
    assert "run docker-index users delete remote1" in result.output


def test_cleanup_removes_a_repository_whose_delete_step_failed(monkeypatch):
    from index.ops.selfcheck import clean_up_locally
    with running_index() as index:
        store = index.app.extensions["docker_index"].store
        session = new_session(index.url, "leftover", "left-pass-1")
        namespace, _, repository = session.repository.partition("/")
        store.create_user("leftover", "x", "leftover@example.com", active=True, admin=False)
        store.announce_repository(namespace, repository, [{"id": "c" * 64}], owner="leftover")
        session.facts["registered"] = True
        monkeypatch.setenv("INDEX_DATA_DIR", str(index.app.config["DATA_DIR"]))
        out: list[str] = []
        assert clean_up_locally(session, out.append) is True
        assert out == [f"cleanup: removed repository {session.repository}",
                       "cleanup: removed account leftover (registered by this run)"]
        assert store.get_repository(namespace, repository) is None and store.find_user("leftover") is None
