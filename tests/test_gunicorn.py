"""The production server (gunicorn with gunicorn.conf.py) under what a study meets: a graceful
reload in the middle of a crowd, and several hosts that share nothing but the database. These tests
run real gunicorn processes against PostgreSQL."""

import signal
import threading
import time

import pytest
from ratings.models import Participant, Rating
from ratings.simulation import ServerTransport
from tests.live_servers import AlternatingTransport, gunicorn, require_postgresql, run_participants, worker_pids

PARTICIPANTS = 50
ITEMS = 5 + 1  # sketches and the attention check


def wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_graceful_reload_during_a_run_of_50_participants_gives_no_client_error(make_study, tmp_path):
    require_postgresql()
    study = make_study(slug="pilot", items_per_participant=5, attention=1, real=4, generated=4)
    with gunicorn(tmp_path / "host") as (url, master):
        old_workers = worker_pids(master)
        outcome = {}
        run = threading.Thread(target=lambda: outcome.update(
            errors=run_participants(study, PARTICIPANTS, lambda k: ServerTransport(url))))
        run.start()
        wait_for(lambda: Rating.objects.count() >= 60)
        master.send_signal(signal.SIGHUP)
        stored_at_reload = Rating.objects.count()
        run.join()
        new_workers = worker_pids(master)
    assert outcome["errors"] == []
    assert old_workers and new_workers and not old_workers & new_workers  # every worker was replaced
    assert stored_at_reload <= PARTICIPANTS * ITEMS - 100  # a good part of the run came after it
    assert Participant.objects.filter(finished__isnull=False).count() == PARTICIPANTS
    assert Rating.objects.count() == PARTICIPANTS * ITEMS


@pytest.mark.django_db(transaction=True)
def test_two_hosts_that_share_only_the_database_serve_participants_between_them(make_study, tmp_path):
    """Each participant's requests go to one host and the next to the other, as a load balancer may
    send them; each host has a folder of its own, which stays empty."""
    require_postgresql()
    study = make_study(slug="pilot", items_per_participant=5, attention=1, real=4, generated=4)
    with gunicorn(tmp_path / "host-a", workers=1) as (a, _), gunicorn(tmp_path / "host-b", workers=1) as (b, _):
        errors = run_participants(study, 10, lambda k: AlternatingTransport([a, b]))
    assert errors == []
    assert Participant.objects.filter(finished__isnull=False).count() == 10
    assert Rating.objects.count() == 10 * ITEMS
    for host in ("host-a", "host-b"):
        assert not (tmp_path / host / "media").exists()
