"""Commands that read or write a study stop with one line, not a traceback, on a database that
migrate has not set up or that cannot be opened."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMANDS = [
    ["study_report", "--study", "pilot"],
    ["export_ratings", "--study", "pilot", "--out", "ratings.csv"],
    ["simulate_participants", "--study", "pilot", "--n", "1"],
    ["generate_samples", "--study", "pilot", "--generated", "2", "--real", "2"],
]


def manage(tmp_path, database_url, *args):
    env = dict(os.environ, DATABASE_URL=database_url)
    return subprocess.run([sys.executable, ROOT / "manage.py", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_a_new_database_says_to_migrate(tmp_path, command):
    run = manage(tmp_path, f"sqlite:///{tmp_path / 'new.sqlite3'}", *command)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "run `python manage.py migrate` first" in run.stderr
    assert "ratings" in run.stderr


def test_a_database_that_cannot_be_opened(tmp_path):
    run = manage(tmp_path, f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite3'}", *COMMANDS[0])
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "Cannot reach the database (unable to open database file)" in run.stderr
