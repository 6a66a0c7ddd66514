"""The generated signing key: created once, shared by workers, stale temp files cleaned."""
import os
import time

from index.secrets import TEMP_PREFIX, load_or_create_key


def test_key_is_generated_once_and_reused(tmp_path):
    first = load_or_create_key(tmp_path)
    assert len(first) >= 32
    assert load_or_create_key(tmp_path) == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_stale_temp_key_files_are_removed_but_fresh_ones_kept(tmp_path):
    stale = tmp_path / f"{TEMP_PREFIX}killed"
    fresh = tmp_path / f"{TEMP_PREFIX}writing"
    stale.write_text("half")
    fresh.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    load_or_create_key(tmp_path)
    assert not stale.exists()
    assert fresh.exists()
