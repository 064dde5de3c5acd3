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


def settings_process(code, **env):
    """Run `code` after loading the settings in a fresh process with these environment variables
    (None: unset); returns the finished process."""
    env = {key: value for key, value in {**os.environ, **env}.items() if value is not None}
    code = "import os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'studysite.settings'; import django; " \
           "django.setup(); from django.conf import settings; " + code
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_https_turns_on_secure_cookies_hsts_and_the_hosts_as_trusted_origins():
    run = settings_process("print(json.dumps([settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS, "
                           "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT, "
                           "settings.SECURE_HSTS_SECONDS, settings.SECURE_PROXY_SSL_HEADER]))",
                           HTTPS="1", SECRET_KEY="k" * 50, ALLOWED_HOSTS="study.example.org, .example.net",
                           CSRF_TRUSTED_ORIGINS=None)
    assert json.loads(run.stdout) == [["study.example.org", ".example.net"],
                                      ["https://study.example.org", "https://*.example.net"],
                                      True, True, True, 3600, ["HTTP_X_FORWARDED_PROTO", "https"]]


def test_https_deployment_passes_djangos_deployment_checks():
    env = {**os.environ, "HTTPS": "1", "SECRET_KEY": "a-long-random-secret-key-" * 3, "ALLOWED_HOSTS": "study.example.org"}
    for development_only in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # the browser tests set the latter
        env.pop(development_only, None)
    run = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "no issues" in run.stdout


def test_https_without_a_secret_key_refuses_to_start():
    run = settings_process("print(settings.SECRET_KEY)", HTTPS="1", SECRET_KEY=None)
    assert run.returncode != 0
    assert "HTTPS is on (a public deployment): set SECRET_KEY in the environment." in run.stderr


def test_request_errors_reach_the_servers_log_with_debug_off():
    run = settings_process("import logging; logging.getLogger('django.request').error('boom at /s/x/')", DEBUG=None)
    assert "boom at /s/x/" in run.stderr


def test_processes_starting_at_once_make_one_secret_key(tmp_path, monkeypatch):
    import multiprocessing

    from studysite import settings as settings_module

    monkeypatch.setattr(settings_module, "BASE_DIR", tmp_path)
    pool = multiprocessing.get_context("fork").Pool(8)
    keys = pool.map(default_key_after_a_barrier, range(8))
    pool.close()  # workers leave by themselves: terminate() kills them and can hang the join on a busy machine
    pool.join()
    assert len(set(keys)) == 1 and len(keys[0]) > 40
    assert [p.name for p in tmp_path.iterdir()] == [".secret_key"]
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600


def default_key_after_a_barrier(_):
    import time

    from studysite import settings as settings_module

    time.sleep(0.2 - time.time() % 0.2)  # start together
    return settings_module.default_secret_key()


def setting_with(name, **environment):
    """A setting's value in a fresh process with these environment variables set."""
    code = ("import os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'studysite.settings'; "
            f"from django.conf import settings; print(json.dumps(settings.{name}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **environment},
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def test_postgresql_keeps_prepared_statements_and_the_urls_own_options():
    database = setting_with("DATABASES", DATABASE_URL="postgres://u:p@db.example.org/study?sslmode=verify-full")
    options = database["default"]["OPTIONS"]
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 2
    assert options["sslmode"] == "verify-full"  # TLS to a remote database is never dropped
