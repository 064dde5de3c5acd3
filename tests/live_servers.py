"""The study served by real gunicorn processes (gunicorn.conf.py) on loopback against the tests'
PostgreSQL database, and simulated participants run side by side through them, for the tests of
what a deployment must survive: reloads, and several web hosts sharing one database."""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from django.db import connection, connections

from ratings.simulation import ServerTransport, Simulation
from tests.conftest import ROOT

SECRET_KEY = "the-same-key-on-every-host-" * 3


def require_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL, which gunicorn's processes can share with the tests (CI sets DATABASE_URL)")


def database_url():
    """The tests' database, for other processes."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def gunicorn(folder, workers=2):
    """A gunicorn master with its workers, serving this checkout on a free port, with a local folder
    of its own (its MEDIA_ROOT, where a study once kept its images, and its log); yields (url, process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(folder / "media"), "SECRET_KEY": SECRET_KEY,
           "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": str(workers),
           "TMPDIR": str(folder)}
    env.pop("DEBUG", None)
    with open(folder / "gunicorn.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "studysite.wsgi"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, folder / "gunicorn.log")
        yield url, process
    finally:
        process.terminate()
        process.wait(60)


def wait_until_serving(url, process, log, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn stopped: {log.read_text()}")
        try:
            with urlopen(url + "/s/no-such-study/", timeout=5):
                pass
        except URLError as error:
            if getattr(error, "code", None) == 404:
                return
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def worker_pids(master):
    children = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    return set(map(int, children))


def run_participants(study, n, transports):
    """n simulated participants at once, each through its own transport (transports(k) gives
    participant k's); returns the errors any of them met (an unexpected page, a refused or reset
    connection), as text."""
    errors = []

    def one(k):
        try:
            Simulation(study, "random", k, transports(k)).participant()
        except Exception as error:  # noqa: BLE001 (every client error is a finding)
            errors.append(f"participant {k}: {error!r}")
        finally:
            connections.close_all()  # this thread's database connection

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


class AlternatingTransport:
    """One browser whose requests go to several hosts in turn, as a load balancer may send them:
    the cookies travel with the browser."""

    def __init__(self, urls):
        self.transports = [ServerTransport(url) for url in urls]
        for transport in self.transports[1:]:
            transport.opener = self.transports[0].opener  # one cookie jar
        self.label, self.turn = " + ".join(urls), 0

    def next(self):
        self.turn += 1
        return self.transports[self.turn % len(self.transports)]

    def get(self, path):
        return self.next().get(path)

    def post(self, path, data):
        return self.next().post(path, data)
