"""The trial page and the answers posted to it: what is stored, and that tampered, repeated or
unreadable posts store nothing and never get a 500."""

import base64
import logging
import re

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratings import models
from ratings.forms import MAX_RESPONSE_MS
from ratings.models import Assignment, Rating, Stimulus, StimulusImage
from tests.participant_steps import answer, shown_fields, shown_position, start, url


def test_the_trial_page_shows_one_sketch_three_buttons_and_the_progress(client, study, participant):
    response = client.get(url("trial", study))
    page = response.content.decode()
    first = participant.assignments.select_related("stimulus").get(position=1)
    assert page.count("<img ") == 1
    shown = re.search(r'<img id="sketch" class="sketch" src="data:image/png;base64,([^"]+)" alt="sketch"', page)
    assert base64.b64decode(shown.group(1)) == first.stimulus.png
    buttons = re.findall(r'<button name="grade" value="(\w+)" aria-keyshortcuts="(\d)">([^<]+) <kbd', page)
    assert buttons == [("real", "1", "Real"), ("possibly_real", "2", "Possibly real"), ("fake", "3", "Fake")]
    assert "<span>1 / 5</span>" in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_the_trial_page_names_the_sketch_number_for_screen_readers(client, study, participant):
    answer(client, study)
    page = client.get(url("trial", study)).content.decode()
    assert '<h1 class="visually-hidden">Sketch 2 of 5</h1>' in page
    assert "<title>Sketch 2 of 5 – Sketch study</title>" in page


def test_a_sketch_without_its_image_says_so_can_be_tried_again_and_is_logged(client, study, participant, caplog):
    """The message and its button wait, hidden, for the image's error; the button asks for the page
    again (it is no answer: outside the form, type=button). The researcher finds the missing image
    in the log."""
    first = participant.assignments.select_related("stimulus").get(position=1)
    StimulusImage.objects.filter(stimulus=first.stimulus).delete()
    with caplog.at_level(logging.ERROR, logger="ratings"):
        response = client.get(url("trial", study))
    page = response.content.decode()
    assert response.status_code == 200 and '<img id="sketch" class="sketch" src="" alt="sketch"' in page
    error = re.search(r'<p id="load-error"[^>]*hidden>(.*?)</p>', page, re.S).group(1)
    assert "The sketch did not load." in error
    assert '<button id="retry" type="button">Try again</button>' in error
    form = re.search(r'<form id="trial".*?</form>', page, re.S).group(0)
    assert "retry" not in form
    assert "location.reload()" in page
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"Stimulus {first.stimulus.public_id} has no image"]


def test_an_answer_is_stored_with_its_time_and_its_response_is_the_next_sketchs_page(client, study, participant):
    response = answer(client, study, "possibly_real", response_ms=2150)
    rating = Rating.objects.get()
    first, second = participant.assignments.select_related("stimulus")[:2]
    assert (rating.participant, rating.stimulus, rating.position, rating.grade, rating.response_ms) == (
        participant, first.stimulus, 1, "possibly_real", 2150)
    assert response.status_code == 200 and response.context["assignment"].position == 2
    page = response.content.decode()
    assert "<span>2 / 5</span>" in page and 'name="position" value="2"' in page
    assert base64.b64encode(second.stimulus.png).decode() in page
    assert shown_position(client, study) == 2


def test_the_next_sketchs_page_makes_its_reload_a_plain_request_for_it(client, study, participant):
    """The page that answers a post replaces that post in the browser's history: a reload asks for
    the page again instead of sending the answer again."""
    page = answer(client, study).content.decode()
    assert 'history.replaceState(null, "", location.href);' in page


def test_the_last_answer_leads_to_the_finish_page(client, study, participant):
    for _ in range(4):
        answer(client, study)
    response = answer(client, study)
    assert response.status_code == 302 and response["Location"] == url("done", study)


def test_a_reload_shows_the_same_sketch(client, study, participant):
    answer(client, study)
    first, again = client.get(url("trial", study)), client.get(url("trial", study))
    assert first.context["assignment"] == again.context["assignment"]
    assert first.context["assignment"].position == 2


def test_an_answer_without_javascript_is_kept_without_the_browsers_time(client, study, participant):
    client.post(url("trial", study), {**shown_fields(client, study), "grade": "fake"})
    rating = Rating.objects.get()
    assert rating.response_ms is None and rating.server_ms is not None


def test_the_same_answer_posted_twice_is_stored_once(client, study, participant):
    first = answer(client, study, "real", position=1)
    again = answer(client, study, "real", position=1)
    assert first.status_code == again.status_code == 200
    assert first.context["assignment"].position == again.context["assignment"].position == 2
    assert Rating.objects.count() == 1
    assert shown_position(client, study) == 2


def test_a_second_answer_to_a_graded_sketch_does_not_change_it_and_says_so(client, study, participant):
    """Another answer to the sketch just graded comes from a second tab left behind: the participant
    is told that this answer was not recorded, and where to go on."""
    answer(client, study, "real", position=1)
    response = answer(client, study, "fake", position=1)
    assert list(Rating.objects.values_list("position", "grade")) == [(1, "real")]
    assert response.status_code == 409
    page = response.content.decode()
    assert "That sketch was answered already" in page and "this one was not recorded" in page
    assert f'href="{url("trial", study)}"' in page


def test_an_answer_from_a_tab_further_behind_says_so_too(client, study, participant):
    """The same grade as was given, but to a sketch before the last one graded: a stale tab."""
    answer(client, study, "real", position=1)
    answer(client, study, "fake", position=2)
    response = answer(client, study, "real", position=1)
    assert response.status_code == 409 and "That sketch was answered already" in response.content.decode()
    assert shown_position(client, study) == 3


@pytest.mark.parametrize("last", [False, True], ids=["middle", "last"])
@pytest.mark.parametrize("lands", ["before", "after"])
def test_a_double_post_racing_its_twin_stores_one_rating(client, study, participant, monkeypatch, last, lands):
    """Two posts of one answer at once (a double click without JavaScript): the twin's rating is
    committed while this post is between its checks, `before` or `after` it looks for the next item."""
    position = 5 if last else 1
    for _ in range(position - 1):
        answer(client, study)
    twin = participant.assignments.get(position=position)
    look_up_next = Assignment.next_unrated

    def racing_next_unrated(**found_by):
        if lands == "before":
            Rating.objects.get_or_create(participant=participant, stimulus=twin.stimulus, grade="real",
                                         position=position)
        found = look_up_next(**found_by)
        if lands == "after":
            Rating.objects.get_or_create(participant=participant, stimulus=twin.stimulus, grade="real",
                                         position=position)
        return found

    monkeypatch.setattr(Assignment, "next_unrated", staticmethod(racing_next_unrated))
    response = answer(client, study, "real", position=position)
    if last:
        assert response.status_code == 302
    else:
        assert response.status_code == 200 and response.context["assignment"].position == position + 1
    assert participant.ratings.filter(position=position).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_double_post_outside_a_transaction_stores_one_rating_and_goes_on(client, study, participant, monkeypatch):
    """As a server runs (autocommit, no transaction around the request): the twin's insert fails on
    its own, and the answer's response is still the next sketch's page."""
    twin = participant.assignments.get(position=1)
    look_up_next = Assignment.next_unrated

    def racing_next_unrated(**found_by):
        found = look_up_next(**found_by)
        Rating.objects.get_or_create(participant=participant, stimulus=twin.stimulus, grade="real", position=1)
        return found

    monkeypatch.setattr(Assignment, "next_unrated", staticmethod(racing_next_unrated))
    response = answer(client, study, "real", position=1)
    assert response.status_code == 200 and response.context["assignment"].position == 2
    assert participant.ratings.filter(position=1).count() == 1


def test_a_sketch_not_shown_yet_cannot_be_answered(client, study, participant):
    response = answer(client, study, position=3)
    assert response.status_code == 409
    assert "Nothing was recorded" in response.content.decode()
    assert not Rating.objects.exists()


@pytest.mark.parametrize("change", [
    {"grade": "maybe"}, {"grade": "Real"}, {"grade": ""}, {"grade": "attention"},
    {"position": 6}, {"position": 0}, {"position": -1}, {"position": "1.5"}, {"position": "one"},
    {"position": "1; DROP TABLE"}, {"position": "9" * 5000},
    {"response_ms": -1}, {"response_ms": MAX_RESPONSE_MS + 1}, {"response_ms": 10**30}, {"response_ms": "1e3"},
    {"response_ms": "NaN"}, {"grade": "real\x00"},
], ids=repr)
def test_unreadable_answers_get_a_400_and_store_nothing(client, study, participant, change):
    response = client.post(url("trial", study), {"position": 1, "grade": "real", "response_ms": 900, **change})
    assert response.status_code == 400
    assert "Nothing was recorded" in response.content.decode()
    assert not Rating.objects.exists()


@pytest.mark.parametrize("missing", ["position", "grade"])
def test_answers_missing_a_field_get_a_400_and_store_nothing(client, study, participant, missing):
    data = {"position": 1, "grade": "real", "response_ms": 900}
    del data[missing]
    assert client.post(url("trial", study), data).status_code == 400
    assert not Rating.objects.exists()


@pytest.mark.parametrize("extra", [
    {"participant": "someone-else"}, {"stimulus": "1"}, {"source": "generated"}, {"grade": ["real", "fake"]},
    {"position": [1, 2]},
], ids=repr)
def test_answers_with_fields_the_page_does_not_send_get_a_400_and_store_nothing(client, study, participant, extra):
    data = {"position": 1, "grade": "real", "response_ms": 900, **extra}
    assert client.post(url("trial", study), data).status_code == 400
    assert not Rating.objects.exists()


def test_an_answer_needs_the_csrf_token(study):
    browser = Client(enforce_csrf_checks=True)
    start_with_csrf(browser, study)
    data = {"position": 1, "grade": "real", "response_ms": 900}
    assert browser.post(url("trial", study), data).status_code == 403
    assert browser.post(url("trial", study), {**data, "csrfmiddlewaretoken": "x" * 64}).status_code == 403
    assert not Rating.objects.exists()
    token = csrf_token(browser.get(url("trial", study)))
    assert browser.post(url("trial", study), {**data, "csrfmiddlewaretoken": token}).status_code == 200
    assert Rating.objects.count() == 1


def test_consent_needs_the_csrf_token(study):
    browser = Client(enforce_csrf_checks=True)
    browser.get(url("landing", study))
    assert browser.post(url("consent", study), {"decision": "agree"}).status_code == 403
    assert not study.participants.exists()


def test_an_answer_without_a_participant_stores_nothing(client, study, participant):
    stranger = Client()
    response = answer(stranger, study, position=1)
    assert response.status_code == 403 and "Your session has ended" in response.content.decode()
    assert not Rating.objects.exists()


def test_a_participant_of_one_study_cannot_answer_in_another(client, study, participant, make_study):
    other = make_study(slug="other", items_per_participant=4, attention=1)
    start(Client(), other)
    assert answer(client, other, position=1).status_code == 403
    assert not Rating.objects.exists()


def test_attention_checks_are_answered_like_any_sketch(client, study, participant):
    check = participant.assignments.get(stimulus__source=Stimulus.Source.ATTENTION)
    for _ in range(check.position):
        answer(client, study, "fake")
    assert participant.ratings.get(position=check.position).stimulus == check.stimulus


def test_the_trial_page_looks_the_same_for_every_kind_of_sketch(client, study, participant):
    """Apart from the image itself, the position and the CSRF token, every trial page is the same
    page: nothing in it depends on a sketch's source or category."""
    pages = {}
    for assignment in participant.assignments.select_related("stimulus"):
        page = client.get(url("trial", study)).content.decode()
        pages[assignment.stimulus.source] = neutral(page, assignment)
        answer(client, study)
    assert set(pages) == {"real", "generated", "attention"}
    assert len(set(pages.values())) == 1
    words = re.sub(r'<div class="grades">.*?</div>', "", pages["real"], flags=re.S).lower()
    for word in ("real", "generated", "attention", "circle", "square", "condition", "temperature"):
        assert word not in words


def neutral(page, assignment):
    page = re.sub(r'src="data:image/png;base64,[^"]+"', "IMAGE", page)
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "TOKEN", page)
    page = re.sub(r'name="served" value="[^"]+"', "SERVED", page)
    page = page.replace(f'<progress value="{assignment.position}"', "<progress value=N")
    page = page.replace(f'name="position" value="{assignment.position}"', "name=position value=N")
    page = page.replace(f"Sketch {assignment.position} of ", "Sketch N of ")
    return page.replace(f"<span>{assignment.position} / ", "<span>N / ")


def csrf_token(response):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode()).group(1)


def start_with_csrf(browser, study):
    browser.get(url("landing", study))
    token = csrf_token(browser.get(url("consent", study)))
    browser.post(url("consent", study), {"decision": "agree", "csrfmiddlewaretoken": token})
    token = csrf_token(browser.get(url("instructions", study)))
    browser.post(url("instructions", study), {"csrfmiddlewaretoken": token})


posted_values = st.one_of(st.text(st.characters(exclude_categories=["Cs"]), max_size=30), st.integers().map(str), st.sampled_from(["real", "fake", "1", ""]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["position", "grade", "response_ms", "junk"]), posted_values))
def test_no_post_gets_a_server_error(client, study, participant, data):
    before = Rating.objects.count()
    response = client.post(url("trial", study), data)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert Rating.objects.count() == before
    assert Rating.objects.count() <= before + 1


def test_an_answer_keeps_the_servers_time_from_the_page_to_the_answer(client, study, participant, monkeypatch):
    clock = [1_700_000_000_000]
    monkeypatch.setattr(models, "now_ms", lambda: clock[0])
    page = shown_fields(client, study)
    clock[0] += 2500
    assert client.post(url("trial", study), {**page, "grade": "real", "response_ms": 2100}).status_code == 200
    assert Rating.objects.values_list("response_ms", "server_ms").get() == (2100, 2500)


def test_an_answer_without_the_pages_timestamp_is_kept_without_the_servers_time(client, study, participant):
    assert client.post(url("trial", study), {"position": 1, "grade": "real", "response_ms": 900}).status_code == 200
    assert Rating.objects.values_list("response_ms", "server_ms").get() == (900, None)


@pytest.mark.parametrize("tamper", ["changed time", "unsigned", "another sketch's"])
def test_a_changed_timestamp_gets_a_400_and_stores_nothing(client, study, participant, tamper):
    first_page = shown_fields(client, study)
    answer(client, study)
    page = shown_fields(client, study)
    pk, served_at = Assignment.read_served_token(page["served"])
    page["served"] = {"changed time": page["served"].replace(str(served_at), str(served_at + 60_000)),
                      "unsigned": f"{pk}.{served_at}",
                      "another sketch's": first_page["served"]}[tamper]
    response = client.post(url("trial", study), {**page, "grade": "real", "response_ms": 900})
    assert response.status_code == 400 and "Nothing was recorded" in response.content.decode()
    assert participant.ratings.count() == 1


def test_the_trial_page_costs_one_query(client, study, participant, django_assert_max_num_queries):
    answer(client, study)
    with django_assert_max_num_queries(1):
        assert client.get(url("trial", study)).status_code == 200


def test_an_answer_costs_a_look_up_and_an_insert(client, study, participant, django_assert_max_num_queries):
    page = shown_fields(client, study)
    # The item answered and the one after it, then the insert. In a test's transaction the
    # insert's atomic block is a savepoint: two queries more.
    with django_assert_max_num_queries(4):
        assert client.post(url("trial", study), {**page, "grade": "real", "response_ms": 900}).status_code == 200
    for _ in range(3):
        answer(client, study)
    page = shown_fields(client, study)
    with django_assert_max_num_queries(9):  # the last answer checks all is done (the drawing task too): once
        response = client.post(url("trial", study), {**page, "grade": "real", "response_ms": 900})
    assert response["Location"] == url("done", study)
