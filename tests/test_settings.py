"""Settings from the environment: the defaults are the ones the README's configuration table gives."""

import json
import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def default_setting(name, variable=None):
    """A setting's value with its environment variable (by default its own name) unset, from a
    fresh process."""
    env = {key: value for key, value in os.environ.items() if key != (variable or name)}
    code = ("import os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'studysite.settings'; "
            f"from django.conf import settings; print(json.dumps(settings.{name}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def readme_default(name):
    row = re.search(rf"^\| `{name}` \| `([^`]*)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    return row.group(1)


def test_allowed_hosts_default_is_the_readmes_and_local_only():
    # Not Django's test-client host "testserver": tests add it themselves, and simulate_participants
    # sends its test-client requests to a host the settings accept.
    hosts = default_setting("ALLOWED_HOSTS")
    assert hosts == readme_default("ALLOWED_HOSTS").split(",")
    assert "testserver" not in hosts


def test_sqlite_default_takes_the_write_lock_at_the_start_of_a_transaction():
    # The quick start's SQLite: concurrent participant starts queue instead of failing "locked".
    database = default_setting("DATABASES", "DATABASE_URL")["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
