"""kill -9 at random moments: every file still parses and every acknowledged write is there."""
import os

import pytest

from tests.store.crashes import run_trials

pytestmark = pytest.mark.live  # starts processes

# The full count runs in bench/kill9.py; STORE_KILL_TRIALS raises or lowers it here.
TRIALS = int(os.environ.get("STORE_KILL_TRIALS", "100"))


def test_kill_9_never_loses_an_acknowledged_write_nor_damages_a_file(tmp_path):
    outcome = run_trials(tmp_path / "data", TRIALS, max_delay=0.12)
    assert outcome.problems == []
    assert outcome.trials == TRIALS
    assert outcome.acknowledged >= TRIALS // 2  # every odd trial waited for at least one
