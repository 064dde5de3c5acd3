"""Error pages, as a deployment shows them (DEBUG off): in the study's plain style, saying what to
do next, and nothing about the request, so nothing about a stimulus."""

import re
import socket

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse

from ratings.models import Assignment, Participant, Rating
from tests.participant_steps import shown_fields, shown_position, start, url


@pytest.fixture(autouse=True)
def deployed(settings):
    settings.DEBUG = False


def study_page(response, status, title):
    """Check a response is the study's plain page with this status and heading; returns its text."""
    page = response.content.decode()
    assert response.status_code == status
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert f"<h1>{title}</h1>" in page and "<main>" in page
    return page


def said(page):
    """The message's text, without the page's script."""
    return re.search(r"<h1>.*?</main>", page, re.S).group(0)


def test_an_unknown_address(client):
    page = study_page(client.get("/no/such/page/"), 404, "Page not found")
    assert "Please check the link you were given" in page
    assert "/no/such/page/" not in page


@pytest.mark.parametrize("method, name, allowed", [
    ("post", "landing", "GET, HEAD"), ("post", "done", "GET, HEAD"), ("put", "trial", "GET, HEAD, POST")])
def test_a_method_a_page_does_not_take_gets_the_plain_page(client, study, method, name, allowed):
    response = getattr(client, method)(url(name, study))
    page = study_page(response, 405, "Bad request")
    assert "Please follow the link you were given again" in page
    assert response["Allow"] == allowed


def test_an_expired_form(study):
    """A post without its CSRF cookie: a browser that blocks cookies, or a page left open for long."""
    browser = Client(enforce_csrf_checks=True)
    browser.get(url("consent", study))
    browser.cookies.clear()
    page = study_page(browser.post(url("consent", study), {"decision": "agree"}), 403, "This page has expired")
    assert "Nothing was recorded" in page and "allow cookies" in page
    assert "CSRF" not in page
    assert not Participant.objects.exists()


def test_an_expired_answer_links_back_to_the_study_instead_of_asking_for_a_reload(study):
    """A reload would post the expired form again and land here again: the page offers a plain
    link (a GET) to the study, which shows the sketch the participant is at."""
    participant_browser = Client()
    start(participant_browser, study)
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = participant_browser.cookies  # the participant's session, without a CSRF cookie
    response = browser.post(url("trial", study), {"position": 1, "grade": "real", "response_ms": 900})
    page = study_page(response, 403, "This page has expired")
    assert "tap the button below" in said(page) and "reload" not in said(page)
    assert f'<a class="button" href="{url("trial", study)}">Back to the study</a>' in page
    back = browser.get(url("trial", study))
    assert back.status_code == 200 and back.context["assignment"].position == 1
    assert not Rating.objects.exists()


def test_an_expired_consent_form_links_back_to_the_consent_form(study):
    browser = Client(enforce_csrf_checks=True)
    browser.get(url("consent", study))
    browser.cookies.clear()
    page = study_page(browser.post(url("consent", study), {"decision": "agree"}), 403, "This page has expired")
    assert f'href="{url("consent", study)}"' in page and "tap the button below" in page


def test_an_expired_form_outside_a_study_has_no_study_link():
    browser = Client(enforce_csrf_checks=True)
    page = study_page(browser.post("/admin/login/", {"username": "x", "password": "y"}), 403, "This page has expired")
    assert "Please follow the link you were given again" in page
    assert "Back to the study" not in page and "reload" not in said(page)


def test_a_server_fault_on_a_trial(study, monkeypatch):
    browser = Client(raise_request_exception=False)
    participant = start(browser, study)
    secret = f"stimulus {participant.assignments.first().stimulus.public_id} is generated"

    def fault(**found_by):
        raise RuntimeError(secret)

    monkeypatch.setattr(Assignment, "next_unrated", staticmethod(fault))
    page = study_page(browser.get(url("trial", study)), 500, "Something went wrong")
    assert "Please try again in a few minutes" in page
    assert secret not in page and "RuntimeError" not in page


def test_a_request_for_another_host(client):
    page = study_page(client.get("/s/pilot/", HTTP_HOST="study.attacker.example"), 400, "Bad request")
    assert "attacker" not in page


def test_a_page_someone_may_not_see(client, django_user_model):
    """Staff without the right to add studies."""
    client.force_login(django_user_model.objects.create_user("assistant", password="x", is_staff=True))
    study_page(client.get(reverse("admin:ratings_study_add")), 403, "Not allowed")


def connection_cut(execute, sql, params, many, context):
    """What every query meets while the database restarts."""
    raise OperationalError("server closed the connection unexpectedly")


def test_a_database_out_of_reach_gets_a_page_that_tries_again_by_itself(study):
    browser = Client(raise_request_exception=False)
    start(browser, study)
    page = shown_fields(browser, study)
    with connection.execute_wrapper(connection_cut):
        responses = [browser.post(url("trial", study), {**page, "grade": "real", "response_ms": 900}),
                     browser.get(url("trial", study)), browser.get(url("landing", study))]
    for response in responses:
        text = study_page(response, 503, "One moment, please")
        assert response["Retry-After"] == "3" and '<meta http-equiv="refresh" content="3">' in text
        assert "OperationalError" not in text and "server closed" not in text
    assert not Rating.objects.exists()
    assert shown_position(browser, study) == 1  # the page's own retry: the same sketch, to answer again


@pytest.mark.django_db(transaction=True)
def test_a_database_server_that_refuses_connections_gets_the_retry_page(make_study, monkeypatch):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to lose (CI runs this on PostgreSQL)")
    study = make_study(slug="pilot", items_per_participant=4, attention=1)
    browser = Client(raise_request_exception=False)
    start(browser, study)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    connection.close()
    with monkeypatch.context() as database_down:
        database_down.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        database_down.setitem(connection.settings_dict, "PORT", str(closed_port))
        study_page(browser.get(url("trial", study)), 503, "One moment, please")
    connection.close()
    assert shown_position(browser, study) == 1
