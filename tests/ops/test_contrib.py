"""The systemd units in contrib/ are valid for systemd (``systemd-analyze verify``, where installed)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.live  # runs systemd-analyze

CONTRIB = ROOT / "contrib"
UNITS = ["docker-index.service", "docker-index-backup.service", "docker-index-backup.timer",
         "docker-index-gc.service", "docker-index-gc.timer"]
INSTALL_DIR = "/srv/docker-index"


def _installed_copies(folder: Path) -> list[Path]:
    """The units as on a machine where the checkout lives at INSTALL_DIR: here, this checkout."""
    script = Path(sys.executable).parent / "docker-index"
    copies = []
    for name in UNITS:
        text = (CONTRIB / name).read_text()
        text = text.replace(f"{INSTALL_DIR}/.venv/bin/docker-index", str(script))
        text = text.replace(INSTALL_DIR, str(folder))
        (folder / name).write_text(text)
        copies.append(folder / name)
    return copies


def test_units_name_the_installed_command_and_its_data_dir():
    service = (CONTRIB / "docker-index.service").read_text()
    assert f"ExecStart={INSTALL_DIR}/.venv/bin/docker-index serve" in service
    assert f"Environment=INDEX_DATA_DIR={INSTALL_DIR}/data" in service
    assert "RestartPreventExitStatus=2" in service   # a bad setting is not fixed by restarting
    backup = (CONTRIB / "docker-index-backup.service").read_text()
    assert "docker-index backup --keep 14 /var/backups/docker-index" in backup
    assert f"ExecStart={INSTALL_DIR}/.venv/bin/docker-index gc\n" in (CONTRIB / "docker-index-gc.service").read_text()


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd): units not verified")
    copies = _installed_copies(tmp_path)
    finished = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, copies)],
                              capture_output=True, text=True, timeout=60)
    # verify exits 0 for unknown keys too, but says so on stderr: both must be clean.
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr.strip() == "", finished.stderr


def test_verify_would_catch_a_mistake(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd): units not verified")
    broken = tmp_path / "docker-index.service"
    broken.write_text((CONTRIB / "docker-index.service").read_text().replace("TimeoutStopSec", "TimeoutStoSec"))
    finished = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)],
                              capture_output=True, text=True, timeout=60)
    assert "TimeoutStoSec" in finished.stderr
