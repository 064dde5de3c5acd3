"""The participant's path outside the trials: landing, consent, instructions, done, and the
pages for closed and unknown studies, recruitment ids and coming back."""

import re
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.test import Client
from django.utils import timezone

from ratings.models import Participant, Rating
from tests.participant_steps import answer, consent, finish, followed, shown_position, start, url


@pytest.fixture
def study(make_study):
    return make_study(slug="pilot", items_per_participant=4, attention=1, completion_code="C0DE42")


def test_the_path_from_the_link_to_the_first_sketch(client, study):
    landing = client.get(url("landing", study))
    assert landing.status_code == 200
    assert url("consent", study) in landing.content.decode()
    consent_page = client.get(url("consent", study))
    assert study.consent_text_shown in consent_page.content.decode()
    assert client.post(url("consent", study), {"decision": "agree"})["Location"] == url("instructions", study)
    participant = Participant.objects.get(study=study)
    assert participant.consented is not None and not participant.assignments.exists()
    instructions = client.get(url("instructions", study))
    assert "keys <kbd>1</kbd> (Real)" in instructions.content.decode()
    assert client.post(url("instructions", study))["Location"] == url("trial", study)
    assert participant.assignments.count() == 4 + 1
    assert client.get(url("trial", study)).status_code == 200


def test_participant_pages_are_never_cached(client, study):
    response = client.get(url("landing", study))
    assert "no-store" in response["Cache-Control"]


def test_declining_consent_ends_politely_and_stores_nobody(client, study):
    client.get(url("landing", study, PROLIFIC_PID="abc123"))
    response = client.post(url("consent", study), {"decision": "decline"}, follow=True)
    assert response.status_code == 200
    assert "You chose not to take part, so nothing was recorded" in response.content.decode()
    assert not Participant.objects.exists()
    assert client.get(url("instructions", study))["Location"] == url("landing", study)


@pytest.mark.parametrize("data", [{}, {"decision": ""}, {"decision": "yes"}])
def test_consent_without_a_clear_answer_asks_again(client, study, data):
    response = client.post(url("consent", study), data)
    assert response.status_code == 400
    assert url("consent", study) in response.content.decode()
    assert not Participant.objects.exists()


def test_pages_ahead_of_the_participant_send_them_back(client, study):
    for name in ("instructions", "trial", "done"):
        assert client.get(url(name, study))["Location"] == url("landing", study)
    consent(client, study)
    for name in ("consent", "trial", "done"):
        assert client.get(url(name, study))["Location"] == url("instructions", study)


def test_recruitment_ids_are_stored(client, study):
    participant = consent(client, study, PROLIFIC_PID="5f3a9c", STUDY_ID="s-1", SESSION_ID="sess_9")
    assert (participant.prolific_pid, participant.external_study_id, participant.external_session_id) == (
        "5f3a9c", "s-1", "sess_9")


def test_a_visit_without_the_ids_keeps_those_the_link_brought(client, study):
    client.get(url("landing", study, PROLIFIC_PID="5f3a9c", STUDY_ID="s-1", SESSION_ID="sess_9"))
    assert client.get(url("landing", study)).status_code == 200
    participant = consent(client, study)
    assert (participant.prolific_pid, participant.external_study_id, participant.external_session_id) == (
        "5f3a9c", "s-1", "sess_9")


@pytest.mark.parametrize("query", [
    {"PROLIFIC_PID": "<script>"}, {"STUDY_ID": "a%20b"}, {"SESSION_ID": "x" * 65}, {"PROLIFIC_PID": "a%00"},
    # A spreadsheet would read these cells of the exported CSV as formulas.
    {"PROLIFIC_PID": "-2-3"}, {"STUDY_ID": "-A1"},
])
def test_unreadable_recruitment_ids_get_a_clear_400_page(client, study, query):
    response = client.get(url("landing", study, **query))
    assert response.status_code == 400
    assert "This link is incomplete" in response.content.decode()
    assert client.post(url("consent", study), {"decision": "agree"}).status_code == 302
    assert Participant.objects.get().prolific_pid == ""


def test_a_recruitment_id_alone_does_not_take_over_a_participant(client, study):
    """The attack: someone who knows a participant's PROLIFIC_PID (access logs, the participants
    CSV) opens the study link with it on another browser."""
    victim = start(client, study, PROLIFIC_PID="victim42")
    answer(client, study, "real")
    attacker = Client()
    assert attacker.get(url("landing", study, PROLIFIC_PID="victim42"))["Location"] == url("resume", study)
    assert attacker.get(url("trial", study))["Location"] == url("landing", study)  # not the victim's sketch
    stolen = attacker.post(url("trial", study), {"position": 2, "grade": "fake", "response_ms": 900})
    assert stolen.status_code == 403 and victim.ratings.count() == 1
    # Starting again makes an attempt of the attacker's own, flagged as a duplicate id.
    consent(attacker, study)
    attacker.post(url("instructions", study))
    answer(attacker, study, "fake")
    imposter = Participant.objects.exclude(pk=victim.pk).get()
    assert (imposter.prolific_pid, imposter.attempt, imposter.duplicate_id) == ("victim42", 2, True)
    # The victim goes on where they were, and nothing of theirs is lost or changed.
    assert shown_position(client, study) == 2
    answer(client, study, "possibly_real")
    assert list(victim.ratings.values_list("position", "grade")) == [(1, "real"), (2, "possibly_real")]
    assert (Participant.objects.get(pk=victim.pk).attempt, imposter.ratings.count()) == (1, 1)


def test_the_resume_code_shown_at_the_start_continues_on_another_browser(client, study):
    participant = consent(client, study, PROLIFIC_PID="returning")
    page = client.get(url("instructions", study)).content.decode()
    assert f'<span class="code">{participant.resume_code}</span>' in page
    assert re.fullmatch(r"[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}", participant.resume_code)
    client.post(url("instructions", study))
    answer(client, study)
    elsewhere = Client()
    assert elsewhere.get(url("landing", study, PROLIFIC_PID="returning"))["Location"] == url("resume", study)
    typed = participant.resume_code.lower().replace("-", " ")  # as someone may type it
    assert elsewhere.post(url("resume", study), {"code": typed})["Location"] == url("trial", study)
    assert shown_position(elsewhere, study) == 2
    assert Participant.objects.get() == participant


def test_the_resume_code_is_shown_only_to_those_with_a_recruitment_id(client, study):
    consent(client, study)
    assert "resume code" not in client.get(url("instructions", study)).content.decode()


def test_wrong_resume_codes_continue_nobody_and_ten_close_the_code(client, study):
    participant = start(client, study, PROLIFIC_PID="guessed")
    guesser = Client()
    guesser.get(url("landing", study, PROLIFIC_PID="guessed"))
    for attempt in range(1, Participant.MAX_RESUME_FAILURES + 1):
        page = guesser.post(url("resume", study), {"code": "AAAA-AAAA"})
        said = "Too many wrong codes" if attempt == Participant.MAX_RESUME_FAILURES else "That code is not right"
        assert page.status_code == 400 and said in page.content.decode()
    page = guesser.post(url("resume", study), {"code": participant.resume_code})
    assert page.status_code == 400 and "Too many wrong codes" in page.content.decode()
    assert guesser.get(url("trial", study))["Location"] == url("landing", study)
    assert answer(client, study).status_code == 200 and participant.ratings.count() == 1  # their own browser


def test_the_resume_page_is_only_for_links_that_someone_has_used(client, study):
    assert client.get(url("resume", study))["Location"] == url("landing", study)
    client.get(url("landing", study, PROLIFIC_PID="fresh"))
    assert client.get(url("resume", study))["Location"] == url("landing", study)
    assert client.post(url("resume", study), {"code": "AAAA-AAAA"})["Location"] == url("landing", study)


def test_a_new_prolific_pid_on_a_used_browser_is_a_new_participant(client, study):
    first = start(client, study, PROLIFIC_PID="first")
    assert client.get(url("landing", study, PROLIFIC_PID="second")).status_code == 200
    second = consent(client, study, PROLIFIC_PID="second")
    assert second != first and second.prolific_pid == "second"


def test_another_browser_consenting_under_a_used_id_is_a_second_attempt(client, study):
    first = consent(client, study, PROLIFIC_PID="twice")
    again = Client()
    again.get(url("landing", study))
    session = again.session
    session[f"ratings.recruitment.{study.pk}"] = {"prolific_pid": "twice", "external_study_id": "",
                                                  "external_session_id": ""}
    session.save()
    again.post(url("consent", study), {"decision": "agree"})
    second = followed(again, study)
    assert [(p.pk, p.attempt) for p in Participant.objects.order_by("attempt")] == [(first.pk, 1), (second.pk, 2)]
    assert followed(client, study) == first


def test_a_consent_form_sent_twice_at_once_makes_one_participant(study):
    """A double click on "I agree": the two posts race, so neither carries a session holding the
    participant the other made (here the page was opened without a session cookie, as by a direct link)."""
    first_post, second_post = Client(), Client()
    token = consent_token(first_post.get(url("consent", study)))
    for browser in (first_post, second_post):
        response = browser.post(url("consent", study), {"consent_token": token, "decision": "agree"})
        assert response["Location"] == url("instructions", study)
    participant = Participant.objects.get()
    assert followed(first_post, study) == followed(second_post, study) == participant


def test_consent_forms_share_a_token_per_browser_until_it_enrolls(client, study):
    # Two tabs' forms carry one token, so posted at the same moment they make one participant (above).
    token = consent_token(client.get(url("consent", study)))
    assert consent_token(client.get(url("consent", study))) == token
    assert consent_token(Client().get(url("consent", study))) != token
    client.post(url("consent", study), {"consent_token": token, "decision": "agree"})
    assert Participant.objects.get().consent_token == token
    # Someone new on this browser gets a form of their own.
    client.get(url("landing", study, PROLIFIC_PID="second"))
    assert consent_token(client.get(url("consent", study))) != token


def consent_token(consent_page):
    return re.search(r'name="consent_token" value="([\w-]+)"', consent_page.content.decode()).group(1)


@pytest.mark.django_db(transaction=True)
def test_a_database_restart_between_two_requests_fails_neither(client, make_study):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to restart (CI runs this on PostgreSQL)")
    study = make_study(slug="pilot", items_per_participant=4, attention=1)
    participant = start(client, study)
    # What a restarted server leaves behind: the connection Django keeps between requests is cut.
    connection.connection.close()
    close_old_connections()  # as a server does at the start of each request (the test client does not)
    answer(client, study, "real")
    assert participant.ratings.count() == 1


def test_a_server_restart_loses_nothing(client, study):
    """A participant is their signed cookie and the database: a new client (a restarted server's)
    with the same cookies is the same participant, at the same sketch."""
    participant = start(client, study)
    answer(client, study, "real")
    answer(client, study, "fake")
    restarted = Client()
    restarted.cookies = client.cookies
    assert restarted.get(url("landing", study))["Location"] == url("trial", study)
    assert restarted.get(url("trial", study)).context["assignment"].position == 3
    assert list(participant.ratings.values_list("position", "grade")) == [(1, "real"), (2, "fake")]


def test_starting_twice_keeps_the_first_sequence(client, study):
    participant = start(client, study)
    sequence = list(participant.assignments.values_list("stimulus", flat=True))
    assert client.post(url("instructions", study))["Location"] == url("trial", study)
    assert list(participant.assignments.values_list("stimulus", flat=True)) == sequence


def test_the_done_page_gives_the_completion_code(client, study):
    start(client, study)
    participant = finish(client, study)
    assert participant.finished is not None
    response = client.get(url("trial", study), follow=True)
    assert response.redirect_chain == [(url("done", study), 302)]
    page = response.content.decode()
    assert "C0DE42" in page and "You can close this page now" in page
    assert participant.ratings.count() == 5


def test_the_done_page_links_back_to_the_recruitment_site(client, study):
    study.completion_url = "https://app.prolific.com/submissions/complete?cc=C0DE42"
    study.save()
    start(client, study)
    finish(client, study)
    page = client.get(url("done", study)).content.decode()
    assert 'href="https://app.prolific.com/submissions/complete?cc=C0DE42"' in page


def test_a_finished_participant_cannot_start_again(client, study):
    participant = start(client, study, PROLIFIC_PID="done1")
    finish(client, study)
    for name in ("landing", "consent", "instructions", "trial", "resume"):
        assert client.get(url(name, study))["Location"] == url("done", study), name
    assert client.post(url("instructions", study))["Location"] == url("done", study)
    elsewhere = Client()  # the same person on another browser, with their code
    assert elsewhere.get(url("landing", study, PROLIFIC_PID="done1"))["Location"] == url("resume", study)
    assert elsewhere.post(url("resume", study), {"code": participant.resume_code})["Location"] == url("done", study)
    assert Participant.objects.count() == 1 and Rating.objects.count() == 5


def test_a_finished_participant_gets_their_code_after_the_study_closes(client, study):
    start(client, study)
    finish(client, study)
    study.is_open = False
    study.save()
    assert client.get(url("landing", study))["Location"] == url("done", study)
    assert "C0DE42" in client.get(url("done", study)).content.decode()


@pytest.mark.parametrize("name", ["landing", "consent", "instructions", "trial"])
def test_a_closed_study_says_so_to_newcomers(client, study, name):
    study.is_open = False
    study.save()
    response = client.get(url(name, study), follow=True)
    assert response.status_code == 403
    page = response.content.decode()
    assert "This study is closed" in page and "not taking new participants" in page


@pytest.mark.parametrize("name", ["landing", "instructions", "trial"])
def test_a_closed_study_lets_participants_part_way_through_finish(client, study, name):
    """Closing a study stops enrolment, not the sessions under way: nobody is thrown out mid-study."""
    participant = start(client, study, PROLIFIC_PID="midway")
    answer(client, study)
    study.is_open = False
    study.save()
    response = client.get(url(name, study), follow=True)
    assert response.status_code == 200 and "This study is closed" not in response.content.decode()
    if name == "instructions":  # Start again: the same sequence, where they left it
        assert client.post(url("instructions", study))["Location"] == url("trial", study)
    assert shown_position(client, study) == 2
    assert answer(client, study, "fake").context["assignment"].position == 3
    participant = finish(client, study)
    assert participant.finished is not None and participant.ratings.count() == 5
    assert "C0DE42" in client.get(url("done", study)).content.decode()
    # The same person on another browser, with their resume code, finds their completion code too,
    # and nobody can start a new attempt of a closed study.
    elsewhere = Client()
    elsewhere.get(url("landing", study, PROLIFIC_PID="midway"))
    page = elsewhere.get(url("resume", study)).content.decode()
    assert "Start again" not in page
    assert elsewhere.post(url("resume", study), {"code": participant.resume_code})["Location"] == url("done", study)


def test_someone_who_consented_before_the_study_closed_can_start(client, study):
    consent(client, study)
    study.is_open = False
    study.save()
    assert client.get(url("landing", study))["Location"] == url("instructions", study)
    assert client.get(url("instructions", study)).status_code == 200
    assert client.post(url("instructions", study))["Location"] == url("trial", study)
    assert client.get(url("trial", study)).status_code == 200
    assert answer(client, study).status_code == 200 and Rating.objects.count() == 1


def test_a_closed_study_takes_no_new_consent_but_the_answers_of_those_under_way(client, study):
    other = Client()
    start(other, study)
    study.is_open = False
    study.save()
    assert client.post(url("consent", study), {"decision": "agree"}).status_code == 403
    assert client.get(url("landing", study, PROLIFIC_PID="newcomer")).status_code == 403
    assert answer(other, study, position=1).status_code == 200
    assert Participant.objects.count() == 1 and Rating.objects.count() == 1


def test_a_study_that_requires_recruitment_ids_turns_away_the_bare_address(client, study):
    study.recruitment_id_required = True
    study.save()
    for page in (client.get(url("landing", study)), client.get(url("consent", study)),
                 client.post(url("consent", study), {"decision": "agree"})):
        assert page.status_code == 403 and "Please use your recruitment link" in page.content.decode()
    assert not Participant.objects.exists()
    participant = start(client, study, PROLIFIC_PID="with-link")  # through the link: as ever
    assert participant.prolific_pid == "with-link" and participant.assignments.exists()
    assert client.get(url("landing", study)).status_code == 302  # and back later without it


def test_a_study_without_stimuli_is_closed_to_participants(client, make_study):
    empty = make_study(slug="empty", real=0, generated=0, attention=0)
    consent(client, empty)
    response = client.post(url("instructions", empty))
    assert response.status_code == 403 and "This study is closed" in response.content.decode()


@pytest.mark.parametrize("path", ["/s/nope/", "/s/nope/consent/", "/s/nope/trial/", "/s/nope/done/"])
def test_an_unknown_study_gets_a_clear_404_page(client, study, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "Study not found" in response.content.decode()


@pytest.mark.parametrize("name", ["landing", "declined", "done"])
def test_pages_that_take_no_answers_refuse_posts(client, study, name):
    assert client.post(url(name, study)).status_code == 405


def test_the_consent_text_says_how_long_the_study_takes(client, study):
    """4 sketches and 1 attention check at 5 s each and a minute to read: 85 s, about 2 minutes."""
    assert "which takes about 2 minutes." in client.get(url("consent", study)).content.decode()
    assert study.expected_minutes() == (2, "estimated: 5 items at 5 s each and 1 minute to read")


def test_once_three_have_finished_the_duration_is_their_median(client, study):
    now = timezone.now()
    for minutes, pid in ((3, "a"), (7, "b"), (30, "SIMULATED-c"), (12, "d")):  # a dry run's finisher is no measure
        Participant.objects.create(study=study, prolific_pid=pid, consented=now - timedelta(minutes=minutes),
                                   finished=now)
    Participant.objects.create(study=study, prolific_pid="e", consented=now - timedelta(minutes=60))  # unfinished
    assert study.expected_minutes() == (7, "the median of 3 participants who finished")
    assert "which takes about 7 minutes." in client.get(url("consent", study)).content.decode()


def test_a_consent_text_of_the_researchers_own_is_shown_as_written(client, study):
    study.consent_text = "Our approved text: it takes a quarter of an hour. {minutes} is our placeholder."
    study.save()
    page = client.get(url("consent", study)).content.decode()
    assert "Our approved text: it takes a quarter of an hour. 2 is our placeholder." in page


def test_every_page_keeps_to_its_query_budget(client, study, django_assert_max_num_queries):
    """Queries per page (in a test's transaction every write's savepoint counts two more): the
    pages each participant sees once may write the session and the sequence; the trial page and
    answers (test_trial_views) and images (test_stimulus_images) are per sketch and cost far less."""
    budgets = [
        (6, lambda: client.get(url("landing", study, PROLIFIC_PID="budget"))),
        (6, lambda: client.get(url("consent", study))),  # its duration: the finishers' median
        (11, lambda: client.post(url("consent", study), {"decision": "agree"})),
        (3, lambda: client.get(url("instructions", study))),  # is a drawing task pending?
        (16, lambda: client.post(url("instructions", study))),
    ]
    for budget, request in budgets:
        with django_assert_max_num_queries(budget):
            assert request().status_code in (200, 302)
    finish(client, study)
    with django_assert_max_num_queries(2):
        assert client.get(url("done", study)).status_code == 200
