"""The drawing task's pages: where it sits in the study's path, what a drawing post must be to be
stored (a tampered post stores nothing), one drawing per prompt, resuming, and finishing."""

import json

import pytest
from django.test import Client

from ratings.drawing import MAX_POINTS, MAX_STROKES, MAX_STROKES_BYTES, Drawing, DrawingPrompt
from ratings.models import Participant
from tests.participant_steps import circle, consent, draw, draw_all, followed, shown_prompt, start, url


def text(response):
    """The page's HTML with its white space collapsed, as a reader sees the words."""
    return " ".join(response.content.decode().split())


@pytest.fixture
def study(make_study):
    return make_study(slug="sketch", items_per_participant=4, attention=1, completion_code="DR4WN",
                      drawings_per_participant=3, drawing_categories="circle, square", drawing_seconds=20)


def test_the_drawing_task_comes_between_consent_and_the_grading(client, study):
    assert "you draw a few simple sketches, then look at sketches" in text(client.get(url("landing", study)))
    assert client.post(url("consent", study), {"decision": "agree"})["Location"] == url("drawing", study)
    intro = text(client.get(url("drawing", study)))
    assert "First, please draw 3 simple sketches" in intro and "You have 20 seconds for each drawing" in intro
    participant = Participant.objects.get()
    assert not participant.prompts.exists()
    assert client.post(url("drawing", study))["Location"] == url("draw", study)
    categories = list(participant.prompts.values_list("category", flat=True))
    assert sorted(categories[:2]) == ["circle", "square"] and categories[2] in ("circle", "square")
    for position, category in enumerate(categories, start=1):
        page = client.get(url("draw", study)).content.decode()
        assert f"Draw a {category}</h1>" in page and f"{position} / 3" in page and 'role="timer">20 s' in page
        response = draw(client, study)
        assert response["Location"] == url("draw" if position < 3 else "instructions", study)
    assert participant.prompts.filter(drawing__isnull=False).count() == 3
    assert client.post(url("instructions", study))["Location"] == url("trial", study)
    assert participant.assignments.count() == 4 + 1


def test_the_stored_drawing_is_the_posted_raw_strokes_with_a_key_and_its_time(client, study):
    draw_all(client, study)
    strokes = [[[10, 990, 500], [20, 20, 980], [0, 400, 1500]], [[500, 501], [500, 700], [1500, 2600]]]
    participant = Participant.objects.get()
    Drawing.objects.filter(prompt__participant=participant).delete()  # draw the first prompt again
    assert draw(client, study, strokes, position=1).status_code == 302
    drawing = Drawing.objects.get(prompt__position=1)
    assert drawing.strokes == strokes and drawing.duration_ms == 2600 and drawing.accepted and not drawing.too_fast
    assert len(drawing.key_id) == 16 and drawing.key_id.isdigit()
    assert drawing.prompt.participant == participant


def test_pages_ahead_of_the_drawing_task_send_the_participant_back_to_it(client, study):
    consent(client, study)
    for name in ("draw", "instructions", "trial", "done"):
        assert client.get(url(name, study))["Location"] == url("drawing", study)
    client.post(url("drawing", study))
    for name in ("drawing", "instructions", "trial", "done"):
        assert client.get(url(name, study))["Location"] == url("draw", study)
    assert client.post(url("instructions", study))["Location"] == url("draw", study)
    assert not Participant.objects.get().assignments.exists()


def test_a_reload_or_a_new_visit_shows_the_next_prompt_again(client, study):
    participant = consent(client, study, PROLIFIC_PID="returning1")
    client.post(url("drawing", study))
    draw(client, study)
    assert shown_prompt(client, study) == 2
    assert shown_prompt(client, study) == 2
    later = Client()  # the same person on another browser, through their recruitment link and resume code
    assert later.get(url("landing", study, PROLIFIC_PID="returning1"))["Location"] == url("resume", study)
    assert later.post(url("resume", study), {"code": participant.resume_code})["Location"] == url("draw", study)
    assert shown_prompt(later, study) == 2


def test_a_second_post_for_a_prompt_stores_nothing(client, study):
    consent(client, study)
    client.post(url("drawing", study))
    assert draw(client, study, position=1)["Location"] == url("draw", study)
    first = Drawing.objects.get()
    again = draw(client, study, circle(radius=100), position=1)  # a double click, a second tab
    assert again["Location"] == url("draw", study)
    assert list(Drawing.objects.all()) == [first] and Drawing.objects.get().strokes == first.strokes


def test_a_study_that_only_asks_for_drawings_finishes_after_the_last_one(client, make_study):
    study = make_study(slug="draw-only", real=0, generated=0, temperatures=(), attention=0, items_per_participant=0,
                       completion_code="ONLYDRAWN", drawings_per_participant=2, drawing_categories="circle",
                       drawing_seconds=0)
    assert "then look at sketches" not in text(client.get(url("landing", study)))
    consent(client, study)
    intro = text(client.get(url("drawing", study)))
    assert "Please draw 2 simple sketches" in intro and "seconds" not in intro
    client.post(url("drawing", study))
    page = client.get(url("draw", study)).content.decode()
    assert 'role="timer"' not in page and 'data-seconds="0"' in page
    assert draw(client, study)["Location"] == url("draw", study)
    assert draw(client, study)["Location"] == url("done", study)
    participant = Participant.objects.get()
    assert participant.finished is not None and not participant.assignments.exists()
    assert "ONLYDRAWN" in client.get(url("done", study)).content.decode()


def test_empty_and_dot_drawings_are_kept_rejected_and_fast_ones_flagged(client, study):
    consent(client, study)
    client.post(url("drawing", study))
    draw(client, study, [])  # the time ran out before anything was drawn
    draw(client, study, [[[500, 503], [500, 498], [0, 80]], [[505], [502], [300]]])  # taps within 1% of the canvas
    draw(client, study, circle(duration_ms=600))
    drawings = list(Drawing.objects.order_by("prompt__position"))
    assert [d.rejection for d in drawings] == ["empty", "dot", ""]
    assert [d.too_fast for d in drawings] == [True, True, True] and drawings[2].accepted
    assert Participant.objects.get().prompts.filter(drawing__isnull=True).count() == 0


def test_a_drawing_just_larger_than_a_dot_is_accepted(client, study):
    consent(client, study)
    client.post(url("drawing", study))
    draw(client, study, [[[500, 511], [500, 500], [0, 1200]]])
    assert Drawing.objects.get().accepted


def too_many_strokes():
    return [[[1], [1], [0]]] * (MAX_STROKES + 1)


def too_many_points():
    n = MAX_POINTS // 2 + 1
    return [[[1] * n, [1] * n, [0] * n]] * 2


def deep():
    return "[" * 100_000 + "]" * 100_000


TAMPERED = {
    "more bytes than allowed": json.dumps(circle()) + " " * MAX_STROKES_BYTES,
    "too many strokes": too_many_strokes(),
    "too many points": too_many_points(),
    "NaN": '[[[1, NaN], [1, 2], [0, 10]]]',
    "Infinity": '[[[1, 2], [1, Infinity], [0, 10]]]',
    "a number too large for a float": '[[[1, 1e400], [1, 2], [0, 10]]]',
    "a point left of the canvas": [[[-1, 5], [5, 5], [0, 10]]],
    "a point below the canvas": [[[5, 5], [5, 1000.5], [0, 10]]],
    "a negative time": [[[5, 50], [5, 5], [-5, 10]]],
    "a first time other than 0": [[[5, 50], [5, 5], [7, 10]]],
    "times that go back": [[[5, 50], [5, 5], [0, 100]], [[60, 70], [5, 5], [90, 120]]],
    "a time in fractions": [[[5, 50], [5, 5], [0, 10.5]]],
    "a time past the limit": [[[5, 50], [5, 5], [0, 21_001]]],
    "a string for a number": [[["5", 50], [5, 5], [0, 10]]],
    "true for a number": [[[True, 50], [5, 5], [0, 10]]],
    "strokes of two lengths": [[[5, 50], [5], [0, 10]]],
    "an empty stroke": [[[], [], []]],
    "a stroke with a fourth list": [[[5, 50], [5, 5], [0, 10], [1, 1]]],
    "an object": {"drawing": circle()},
    "no JSON": "circle",
    "nesting deeper than the parser goes": deep(),
}


@pytest.mark.parametrize("strokes", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_drawing_stores_nothing(client, study, strokes):
    consent(client, study)
    client.post(url("drawing", study))
    response = draw(client, study, strokes, position=1)
    assert response.status_code == 400
    assert "Nothing was recorded" in response.content.decode()
    assert not Drawing.objects.exists()
    assert shown_prompt(client, study) == 1


def test_a_post_larger_than_the_server_reads_stores_nothing(client, study, settings):
    consent(client, study)
    client.post(url("drawing", study))
    response = draw(client, study, json.dumps(circle()) + " " * settings.DATA_UPLOAD_MAX_MEMORY_SIZE, position=1)
    assert response.status_code == 400 and not Drawing.objects.exists()


def test_the_byte_bound_leaves_room_for_a_full_drawing(client, study):
    """A drawing at every bound at once (strokes, points, canvas corners, the time limit) is taken."""
    per_stroke = MAX_POINTS // MAX_STROKES
    strokes = [[[1000] * per_stroke, [1000] * per_stroke, [20_000 if s else 0] * per_stroke] for s in range(MAX_STROKES)]
    assert len(json.dumps(strokes)) < MAX_STROKES_BYTES
    consent(client, study)
    client.post(url("drawing", study))
    assert draw(client, study, strokes)["Location"] == url("draw", study)
    assert Drawing.objects.get().duration_ms == 20_000


@pytest.mark.parametrize("fields", [
    {"position": 4},  # a prompt the participant does not have (an extra prompt)
    {"position": 0},
    {"position": "one"},
    {"position": ""},
    {"grade": "real"},  # a field the page does not send
], ids=["extra prompt", "position 0", "position not a number", "no position", "an extra field"])
def test_a_post_for_no_prompt_of_the_participant_stores_nothing(client, study, fields):
    consent(client, study)
    client.post(url("drawing", study))
    data = {"position": 1, "strokes": json.dumps(circle()), **fields}
    response = client.post(url("draw", study), data)
    assert response.status_code == 400
    assert not Drawing.objects.exists()


def test_a_field_given_twice_stores_nothing(client, study):
    consent(client, study)
    client.post(url("drawing", study))
    body = f"position=1&strokes={json.dumps(circle())}&strokes={json.dumps(circle())}"
    response = client.post(url("draw", study), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and not Drawing.objects.exists()


def test_a_prompt_ahead_of_the_next_one_stores_nothing(client, study):
    consent(client, study)
    client.post(url("drawing", study))
    response = draw(client, study, position=2)
    assert response.status_code == 409 and not Drawing.objects.exists()


def test_another_participants_prompt_cannot_be_drawn(study):
    """Prompts are named by their position in the sender's own sequence: a participant done with the
    task who posts the position another is at stores nothing, for either of them."""
    first, second = Client(), Client()
    draw_all(first, study)
    consent(second, study)
    second.post(url("drawing", study))
    draw(second, study)
    response = draw(first, study, position=2)
    assert response["Location"] == url("instructions", study)
    other = followed(second, study)
    assert Drawing.objects.filter(prompt__participant=other).count() == 1
    assert Drawing.objects.count() == 3 + 1


def test_a_post_without_the_csrf_token_stores_nothing(study):
    browser = Client(enforce_csrf_checks=True)
    browser.get(url("landing", study))
    page = browser.get(url("consent", study)).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    browser.post(url("consent", study), {"decision": "agree", "csrfmiddlewaretoken": token})
    browser.post(url("drawing", study), {"csrfmiddlewaretoken": token})
    assert DrawingPrompt.objects.count() == 3
    response = browser.post(url("draw", study), {"position": 1, "strokes": json.dumps(circle())})
    assert response.status_code == 403 and not Drawing.objects.exists()
    response = browser.post(url("draw", study), {"position": 1, "strokes": json.dumps(circle()),
                                                 "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Drawing.objects.count() == 1


def test_a_post_without_a_participant_stores_nothing(client, study):
    response = client.post(url("draw", study), {"position": 1, "strokes": json.dumps(circle())})
    assert response.status_code == 403 and not Drawing.objects.exists()


def test_a_study_without_a_drawing_task_has_no_drawing_pages(client, make_study):
    study = make_study(slug="grading", items_per_participant=4, attention=1)
    participant = start(client, study)
    assert client.get(url("draw", study))["Location"] == url("trial", study)
    assert client.get(url("drawing", study))["Location"] == url("trial", study)
    assert draw(client, study, position=1).status_code == 400
    assert not participant.prompts.exists() and not Drawing.objects.exists()


def test_prompts_spread_over_the_categories_across_participants(study):
    study.drawings_per_participant = 1
    study.save()
    for _ in range(6):
        draw_all(Client(), study)
    counts = {c: DrawingPrompt.objects.filter(category=c).count() for c in ("circle", "square")}
    assert counts == {"circle": 3, "square": 3}


def test_started_is_the_press_of_start_drawing_and_the_duration_counts_the_drawings(client, study):
    assert study.expected_minutes() == (3, "estimated: 5 items at 5 s each, 3 drawings at 20 s each and 1 minute "
                                           "to read")  # 60 + 25 + 60 s
    participant = consent(client, study)
    client.post(url("drawing", study))
    participant.refresh_from_db()
    started = participant.started
    assert started is not None
    for _ in range(3):
        draw(client, study)
    client.post(url("instructions", study))
    participant.refresh_from_db()
    assert participant.assignments.exists() and participant.started == started
