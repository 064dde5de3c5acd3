"""The admin, for staff only: studies, stimuli with thumbnails, participants and ratings; its login's
lockout, directly and behind the HTTPS proxy."""

import os
import runpy
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from ratings.models import Rating, Stimulus
from tests.conftest import ROOT
from tests.participant_steps import answer, start

LISTS = ["study", "stimulus", "participant", "rating", "condition"]


@pytest.fixture
def study(make_study):
    study = make_study(slug="pilot", items_per_participant=4, attention=1)
    participant_browser = Client()
    start(participant_browser, study, PROLIFIC_PID="pid42")
    answer(participant_browser, study, "possibly_real", response_ms=777)
    return study


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True,
                                                             is_superuser=True))
    return client


@pytest.mark.parametrize("model", LISTS)
def test_staff_see_every_list(staff, study, model):
    assert staff.get(reverse(f"admin:ratings_{model}_changelist")).status_code == 200


@pytest.mark.parametrize("model", LISTS)
def test_people_who_are_not_staff_are_sent_to_log_in(client, django_user_model, study, model):
    client.force_login(django_user_model.objects.create_user("participant", password="x"))
    response = client.get(reverse(f"admin:ratings_{model}_changelist"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_the_stimulus_list_shows_thumbnails_staff_can_open(staff, study):
    page = staff.get(reverse("admin:ratings_stimulus_changelist")).content.decode()
    for stimulus in Stimulus.objects.filter(study=study):
        assert f'<img src="{stimulus.get_absolute_url()}" alt="sketch"' in page
        assert staff.get(stimulus.get_absolute_url()).status_code == 200


def test_the_lists_show_participants_and_their_ratings(staff, study):
    participants = staff.get(reverse("admin:ratings_participant_changelist")).content.decode()
    assert "pid42" in participants
    ratings = staff.get(reverse("admin:ratings_rating_changelist")).content.decode()
    assert '<td class="field-grade">Possibly real</td>' in ratings
    assert "777" in ratings


def test_the_condition_list_names_each_condition_as_the_results_do(staff, study):
    page = staff.get(reverse("admin:ratings_condition_changelist")).content.decode()
    assert f"test.pt ({'0' * 8}) t=0.5 unconditional" in page  # the label of tests/test_stats.py's frame


def test_the_study_page_gives_the_recruitment_link(staff, study):
    page = staff.get(reverse("admin:ratings_study_change", args=[study.pk])).content.decode()
    assert "http://testserver/s/pilot/?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}" in page


def test_the_add_page_opens(staff, study):
    assert staff.get(reverse("admin:ratings_study_add")).status_code == 200


def study_fields(study, **changes):
    """The study change form's fields, as the admin page sends them."""
    return {"slug": study.slug, "title": study.title, "instructions": study.instructions,
            "consent_text": study.consent_text, "items_per_participant": study.items_per_participant,
            "attention_checks": study.attention_checks, "is_open": "on", "completion_code": study.completion_code,
            "completion_url": study.completion_url, "target_half_width": study.target_half_width,
            "drawings_per_participant": study.drawings_per_participant, "drawing_categories": study.drawing_categories,
            "drawing_seconds": study.drawing_seconds, **changes}


def test_more_attention_checks_set_in_the_admin_are_made_for_the_next_participant(staff, study):
    fields = study_fields(study, title="Pilot", attention_checks=3, completion_code="XYZ")
    response = staff.post(reverse("admin:ratings_study_change", args=[study.pk]), fields)
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.title, study.completion_code, study.attention_checks) == ("Pilot", "XYZ", 3)
    assert study.stimuli.filter(source=Stimulus.Source.ATTENTION).count() == 3


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_a_completion_url_without_a_scheme_gets_https(staff, study):
    change_page = reverse("admin:ratings_study_change", args=[study.pk])
    assert staff.get(change_page).status_code == 200
    fields = study_fields(study, completion_url="app.prolific.com/submissions/complete?cc=XYZ")
    assert staff.post(change_page, fields).status_code == 302
    study.refresh_from_db()
    assert study.completion_url == "https://app.prolific.com/submissions/complete?cc=XYZ"


def test_staff_can_delete_a_participant_with_their_ratings(staff, study):
    participant = study.participants.get()
    response = staff.post(reverse("admin:ratings_participant_delete", args=[participant.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not study.participants.exists() and not Rating.objects.exists()


def test_ten_wrong_passwords_lock_the_account_from_that_address_for_a_while(client, django_user_model):
    django_user_model.objects.create_user("researcher", password="the-right-one", is_staff=True)
    login = reverse("admin:login")
    for attempt in range(1, 11):
        response = client.post(login, {"username": "researcher", "password": "a-guess"})
        assert response.status_code == (429 if attempt == 10 else 200) and "_auth_user_id" not in client.session
    refused = client.post(login, {"username": "researcher", "password": "the-right-one"})
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    other = Client(REMOTE_ADDR="192.0.2.7")  # the same account from another address
    assert other.post(login, {"username": "researcher", "password": "the-right-one"}).status_code == 302


def test_studies_with_the_same_title_show_their_slugs(staff, study, make_study):
    make_study(slug="pilot-2")  # both titled "Sketch study", as generate_samples makes them
    make_study(slug="main", title="The main study")
    page = staff.get(reverse("admin:ratings_study_changelist")).content.decode()
    assert "Sketch study (pilot)" in page and "Sketch study (pilot-2)" in page
    assert "The main study" in page and "The main study (main)" not in page


def test_the_study_page_warns_when_recruited_participants_cannot_be_credited(staff, study):
    change = reverse("admin:ratings_study_change", args=[study.pk])
    assert study.UNCREDITED_WARNING in staff.get(change).content.decode()  # no completion code or URL
    study.completion_code = "XYZ"
    study.save()
    assert study.UNCREDITED_WARNING not in staff.get(change).content.decode()


def test_the_study_page_gives_the_expected_duration_and_the_results(staff, study):
    page = staff.get(reverse("admin:ratings_study_change", args=[study.pk])).content.decode()
    # 4 sketches and 1 attention check.
    assert "about 2 minutes (estimated: 5 items at 5 s each and 1 minute to read)" in page
    assert reverse("results:study", args=[study.slug]) in page


@pytest.mark.parametrize("changes, error", [
    ({"drawings_per_participant": 2, "drawing_categories": ""}, "Name what participants should draw."),
    ({"drawings_per_participant": 2, "drawing_categories": "pig,../x"}, "Categories, comma-separated."),
])
def test_a_drawing_task_needs_categories_that_can_name_files(staff, study, changes, error):
    response = staff.post(reverse("admin:ratings_study_change", args=[study.pk]), study_fields(study, **changes))
    assert response.status_code == 200 and error in response.content.decode()
    study.refresh_from_db()
    assert study.drawings_per_participant == 0


def test_a_drawing_task_set_in_the_admin_is_saved(staff, study):
    fields = study_fields(study, drawings_per_participant=3, drawing_categories="pig, alarm_clock", drawing_seconds=0)
    assert staff.post(reverse("admin:ratings_study_change", args=[study.pk]), fields).status_code == 302
    study.refresh_from_db()
    assert (study.drawing_category_list, study.drawing_seconds, study.asks_for_drawings) == (["pig", "alarm_clock"], 0, True)


def deployed_lockout_settings():
    """The login-lockout settings the project computes for a deployment behind the HTTPS proxy."""
    env = {**os.environ, "HTTPS": "1", "SECRET_KEY": "k" * 50}
    with mock.patch.dict(os.environ, env):
        values = runpy.run_path(str(ROOT / "studysite" / "settings.py"))
    return {name: value for name, value in values.items() if name.startswith(("AXES_", "IPWARE_"))}


def through_the_proxy(client_address, sent_by_the_client=None):
    """A browser at `client_address` behind the proxy, which appends the address it sees to any
    X-Forwarded-For the client sent and connects from loopback."""
    forwarded = f"{sent_by_the_client}, {client_address}" if sent_by_the_client else client_address
    return Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)


@pytest.fixture
def behind_the_proxy(settings):
    for name, value in deployed_lockout_settings().items():
        setattr(settings, name, value)


def test_behind_the_proxy_ten_wrong_passwords_lock_out_that_client_only(behind_the_proxy, django_user_model):
    django_user_model.objects.create_user("researcher", password="the-right-one", is_staff=True)
    login = reverse("admin:login")
    attacker = through_the_proxy("198.51.100.7")
    for attempt in range(1, 11):
        response = attacker.post(login, {"username": "researcher", "password": "a-guess"})
        assert response.status_code == (429 if attempt == 10 else 200)
    # Whatever it claims to be, the locked client stays locked: the proxy's entry is the last.
    spoofing = through_the_proxy("198.51.100.7", sent_by_the_client="203.0.113.9")
    assert spoofing.post(login, {"username": "researcher", "password": "the-right-one"}).status_code == 429
    researcher = through_the_proxy("203.0.113.9")
    assert researcher.post(login, {"username": "researcher", "password": "the-right-one"}).status_code == 302


def test_behind_the_proxy_one_address_trying_many_usernames_is_locked_out(behind_the_proxy, django_user_model):
    django_user_model.objects.create_user("researcher", password="the-right-one", is_staff=True)
    login = reverse("admin:login")
    guesser = through_the_proxy("198.51.100.7")
    for attempt in range(1, 11):
        response = guesser.post(login, {"username": f"user{attempt}", "password": "a-guess"})
        assert response.status_code == (429 if attempt == 10 else 200)
    assert guesser.post(login, {"username": "researcher", "password": "the-right-one"}).status_code == 429
    assert through_the_proxy("203.0.113.9").post(
        login, {"username": "researcher", "password": "the-right-one"}).status_code == 302
