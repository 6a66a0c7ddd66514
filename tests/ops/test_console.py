"""The installed ``docker-index`` command, run as a user runs it: from another directory, as a process."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from index import create_app
from tests.processes import ROOT, clean_env

pytestmark = pytest.mark.live  # runs the docker-index command in processes

SCRIPT = Path(sys.executable).parent / "docker-index"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=clean_env({"INDEX_BCRYPT_ROUNDS": "4", **(env or {})}),
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def installed():
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: `make venv` (or `pip install -e .`) installs the console script")


@pytest.fixture
def index_dir(tmp_path) -> Path:
    """A data dir a server has prepared once."""
    data_dir = tmp_path / "srv" / "data"
    create_app({"DATA_DIR": data_dir, "BCRYPT_ROUNDS": 4}).extensions["docker_index"].store.close()
    return data_dir


def test_help_has_no_side_effects(tmp_path):
    for args in (["--help"], ["users", "--help"], ["gc", "--help"], ["serve", "--help"]):
        finished = run(args, cwd=tmp_path)
        assert finished.returncode == 0, finished.stderr
        assert "Usage: docker-index" in finished.stdout
        assert finished.stderr == ""                      # no settings line, no log at all
    assert list(tmp_path.iterdir()) == []                 # no ./data, no secret key


def test_every_command_of_the_issue_is_listed(tmp_path):
    listed = run(["--help"], cwd=tmp_path).stdout
    for command in ("serve", "users", "repositories", "backup", "restore", "gc", "self-check", "cert",
                    "rotate-key"):
        assert f"\n  {command} " in listed


def test_version_is_the_projects(tmp_path):
    finished = run(["--version"], cwd=tmp_path)
    assert finished.returncode == 0
    from index.version import __version__
    assert finished.stdout == f"docker-index {__version__}\n"
    assert importlib.metadata.version("docker-index") == __version__   # what pip installed
    assert "flask" not in finished.stdout.lower()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["docker-index"] == "index.ops.commands:main"


@pytest.mark.parametrize("args", [["users", "list"], ["repositories", "list"], ["gc", "--dry-run"],
                                  ["backup", "x.tar.gz"], ["rotate-key", "--yes"]])
def test_admin_commands_refuse_a_dir_without_an_index(tmp_path, args):
    finished = run(args, cwd=tmp_path)
    assert finished.returncode == 2
    assert finished.stderr == f"error: no index data in {tmp_path / 'data'}; start the server once or pass --data-dir\n"
    assert not (tmp_path / "data").exists()
    elsewhere = tmp_path / "elsewhere"
    finished = run(["--data-dir", str(elsewhere), *args], cwd=tmp_path)
    assert finished.returncode == 2 and str(elsewhere) in finished.stderr
    assert not elsewhere.exists()


def test_data_dir_from_the_option_or_the_environment_from_any_directory(tmp_path, index_dir):
    created = run(["--data-dir", str(index_dir), "users", "create", "fran", "--email", "fran@example.com",
                   "--password-stdin"], cwd=tmp_path, stdin="fran-pass-1\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout == "created user fran\n"
    assert "effective settings" not in created.stderr   # only serve logs the settings
    listed = run(["users", "list"], cwd=Path("/"), env={"INDEX_DATA_DIR": str(index_dir)})
    assert listed.returncode == 0 and listed.stdout.startswith("fran ")
    assert list(tmp_path.iterdir()) == [tmp_path / "srv"]   # nothing created in the working dir


def test_python_dash_m_index_is_the_same_command(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "index", "--version"], cwd=ROOT, env=clean_env({}),
                              capture_output=True, text=True, timeout=60)
    assert finished.stdout.startswith("docker-index ")


def test_an_unknown_command_creates_nothing(tmp_path):
    finished = run(["frobnicate"], cwd=tmp_path)
    assert finished.returncode == 2 and "No such command 'frobnicate'" in finished.stderr
    assert list(tmp_path.iterdir()) == []


def test_backup_keep_rotates_in_a_directory(tmp_path, index_dir):
    folder = tmp_path / "backups"
    for _ in range(3):
        finished = run(["--data-dir", str(index_dir), "backup", "--keep", "2", str(folder)], cwd=tmp_path)
        assert finished.returncode == 0, finished.stderr
    (folder / "notes.txt").write_text("not a backup")
    finished = run(["--data-dir", str(index_dir), "backup", "--keep", "2", str(folder)], cwd=tmp_path)
    kept = sorted(path.name for path in folder.iterdir())
    assert len(kept) == 3 and "notes.txt" in kept                  # 2 archives + the foreign file
    assert finished.stdout.count("removed old backup") == 1
    newest = [line for line in finished.stdout.splitlines() if line.startswith("backup written to ")][0]
    assert Path(newest.split()[3].rstrip(":")).name in kept
    assert run(["--data-dir", str(index_dir), "backup", str(folder)], cwd=tmp_path).returncode == 1
    assert run(["--data-dir", str(index_dir), "backup", "--keep", "0", str(folder)], cwd=tmp_path).returncode == 2


def test_commands_other_parts_register_on_the_app_are_found(tmp_path, index_dir, monkeypatch):
    import click
    from click.testing import CliRunner

    from index.ops import commands as admin_cli
    from index.ops.commands import main

    @click.command("hello")
    def hello():
        from index.services import services
        click.echo(f"hello from {services().store.root}")

    original = admin_cli.register
    monkeypatch.setattr(admin_cli, "register", lambda app: (original(app), app.cli.add_command(hello)))
    monkeypatch.delenv("INDEX_DATA_DIR", raising=False)
    result = CliRunner().invoke(main, ["--data-dir", str(index_dir), "hello"])
    assert result.exit_code == 0, result.output
    assert f"hello from {index_dir}" in result.output
    monkeypatch.delenv("INDEX_DATA_DIR", raising=False)   # --data-dir wrote it for the process
    missing = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "none"), "hello"])
    assert missing.exit_code == 2 and "No such command 'hello'" in missing.output


def test_serve_takes_the_data_dir_option(tmp_path):
    (tmp_path / "a-file").write_text("")
    finished = run(["--data-dir", str(tmp_path / "a-file" / "data"), "serve"], cwd=tmp_path)
    assert finished.returncode == 2
    assert finished.stderr == f"error: INDEX_DATA_DIR: cannot create {tmp_path}/a-file/data: Not a directory\n"
