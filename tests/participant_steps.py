"""A participant's steps through the study with Django's test client, for the view tests."""

import json
import re

from django.core import signing
from django.urls import reverse

from ratings.models import Participant
from ratings.views import PARTICIPANT_COOKIE, PARTICIPANT_SALT


def url(name, study, **query):
    path = reverse(f"ratings:{name}", args=[study.slug])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def consent(client, study, **recruitment_ids):
    """Follow the link (with any PROLIFIC_PID, STUDY_ID, SESSION_ID) and agree; returns the participant."""
    client.get(url("landing", study, **recruitment_ids))
    client.post(url("consent", study), {"decision": "agree"})
    return followed(client, study)


def followed(client, study):
    """The participant this browser is in the study, or None (its signed cookie, read as the views do)."""
    cookie = client.cookies.get(PARTICIPANT_COOKIE)
    token = signing.loads(cookie.value, salt=PARTICIPANT_SALT).get(str(study.pk)) if cookie and cookie.value else None
    return Participant.objects.filter(study=study, token=token).first() if token else None


def start(client, study, **recruitment_ids):
    """Consent and press Start on the instructions: a participant with their sequence fixed."""
    participant = consent(client, study, **recruitment_ids)
    client.post(url("instructions", study))
    return participant


def shown_fields(client, study):
    """The hidden fields of the trial page shown now (position, served), as the page posts them."""
    page = client.get(url("trial", study)).content.decode()
    return dict(re.findall(r'<input type="hidden" name="(position|served)" value="([^"]*)"', page))


def shown_position(client, study):
    """The position of the sketch the trial page shows now."""
    return int(shown_fields(client, study)["position"])


def answer(client, study, grade="real", response_ms=1234, **fields):
    """Grade the sketch shown now as its page does (or the `position` given, without the page's
    timestamp)."""
    shown = {"position": fields.pop("position")} if "position" in fields else shown_fields(client, study)
    return client.post(url("trial", study), {**shown, "grade": grade, "response_ms": response_ms, **fields})


def finish(client, study, grade="fake"):
    """Answer every remaining sketch."""
    participant = followed(client, study)
    for _ in range(participant.assignments.count() - participant.ratings.count()):
        answer(client, study, grade)
    participant.refresh_from_db()
    return participant


def circle(points=12, radius=300, duration_ms=2000):
    """The raw strokes of a circle drawn in one stroke, as the drawing page posts them."""
    import math

    angles = [2 * math.pi * i / (points - 1) for i in range(points)]
    return [[[round(500 + radius * math.cos(a)) for a in angles], [round(500 + radius * math.sin(a)) for a in angles],
             [round(duration_ms * i / (points - 1)) for i in range(points)]]]


def shown_prompt(client, study):
    """The position of the prompt the drawing page shows now."""
    page = client.get(url("draw", study)).content.decode()
    return int(re.search(r'name="position" value="(\d+)"', page).group(1))


def draw(client, study, strokes=None, **fields):
    """Send a drawing (a circle unless `strokes` is given) for the prompt shown now (or `position`)."""
    strokes = circle() if strokes is None else strokes
    data = {"position": fields.pop("position", None) or shown_prompt(client, study),
            "strokes": strokes if isinstance(strokes, str) else json.dumps(strokes), **fields}
    return client.post(url("draw", study), data)


def draw_all(client, study, **recruitment_ids):
    """Consent and send a circle for every prompt: the drawing task done."""
    participant = consent(client, study, **recruitment_ids)
    client.post(url("drawing", study))
    for _ in range(participant.prompts.count()):
        draw(client, study)
    return participant
