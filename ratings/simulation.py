"""Simulated participants, for a dry run of a study before anyone is recruited.

Each one goes through the participant pages over HTTP as a browser would: the recruitment link
with its ids, consent, the drawing task if the study has one (a wobbly circle for every prompt),
instructions, every sketch (its image on its page, its answer posted with the form's CSRF token) and
the finish page. So a dry run goes through the same views, checks and
database writes as a real session; only the grades come from a policy instead of a person.
"""

import json
import math
import random
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode, urlsplit
from urllib.request import HTTPCookieProcessor, Request, build_opener

from django.conf import settings
from django.test import Client
from django.urls import reverse

from .attention import EXPECTED_GRADE
from .drawing import CANVAS_UNITS
from .models import PNG_DATA_URL, Assignment, Drawing, Participant, Rating, Stimulus

PID_PREFIX = Participant.SIMULATED_PID_PREFIX
RESPONSE_MS = (500, 5000)  # simulated answers take half a second to five seconds
DRAWING_MS = (1500, 5000)  # and drawings a second and a half to five, within the study's time limit
DRAWING_POINTS = 30
TIMEOUT_S = 30


def random_grade(source, rng):
    """Any grade, attention checks included: a participant who is not paying attention."""
    return rng.choice(Rating.Grade.values)


def always_real_grade(source, rng):
    """Everything real, except the attention checks, which get the answer the instructions ask for."""
    return EXPECTED_GRADE if source == Stimulus.Source.ATTENTION else Rating.Grade.REAL


def oracle_grade(source, rng):
    """The truth: real sketches real, generated sketches and attention checks fake."""
    return Rating.Grade.REAL if source == Stimulus.Source.REAL else Rating.Grade.FAKE


POLICIES = {"random": random_grade, "always-real": always_real_grade, "oracle": oracle_grade}


def delete_simulated(study):
    """Remove the study's simulated participants with their assignments and ratings, as a researcher
    must before recruiting; returns how many participants and ratings went."""
    _, removed = study.participants.filter(prolific_pid__startswith=PID_PREFIX).delete()
    return removed.get(Participant._meta.label, 0), removed.get(Rating._meta.label, 0)


@dataclass
class Page:
    status: int
    path: str  # where the redirects ended
    body: bytes


def allowed_host():
    """A host name the settings accept. The test client's requests never leave this process,
    but Django checks their Host header all the same."""
    for pattern in settings.ALLOWED_HOSTS:
        if pattern == "*":
            return "testserver"
        if pattern.lstrip("."):
            return pattern.lstrip(".")  # ".example.org" accepts example.org itself
    return "localhost"  # what DEBUG accepts with no ALLOWED_HOSTS


class TestClientTransport:
    """Requests through Django's test client: this process's views, middleware and database."""

    label = "Django's test client"

    def __init__(self):
        # CSRF checks on, as a browser meets them.
        self.client = Client(enforce_csrf_checks=True, HTTP_HOST=allowed_host())

    def get(self, path):
        return self.page(self.client.get(path, follow=True))

    def post(self, path, data):
        return self.page(self.client.post(path, data, follow=True))

    @staticmethod
    def page(response):
        return Page(response.status_code, response.request["PATH_INFO"], response.content)


class ServerTransport:
    """Requests to a running server with the standard library, keeping cookies as a browser does."""

    def __init__(self, root_url):
        self.root_url = root_url.rstrip("/")
        self.label = self.root_url
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()))

    def get(self, path):
        return self.open(Request(self.root_url + path))

    def post(self, path, data):
        # Django checks the Referer of HTTPS posts against the site, as it would a browser's.
        url = self.root_url + path
        return self.open(Request(url, urlencode(data).encode(), headers={"Referer": url}))

    def open(self, request):
        try:
            with self.opener.open(request, timeout=TIMEOUT_S) as response:
                return Page(response.status, urlsplit(response.url).path, response.read())
        except HTTPError as error:
            with error:
                return Page(error.code, urlsplit(error.url).path, error.read())


class PageReader(HTMLParser):
    """What a simulated participant reads on a page: form fields, the sketch (its data: URL), the heading."""

    def __init__(self, page):
        super().__init__()
        self.fields, self.sketch, self.heading, self.in_heading = {}, None, "", False
        self.feed(page.body.decode("utf-8", "replace"))
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "img" and attrs.get("id") == "sketch":
            self.sketch = attrs.get("src")
        elif tag == "h1":
            self.in_heading = True

    def handle_endtag(self, tag):
        if tag == "h1":
            self.in_heading = False

    def handle_data(self, data):
        if self.in_heading:
            self.heading += data


class SimulationError(Exception):
    """The study did not answer as it answers a participant."""


def expect(page, path, step):
    """Read the page if it is `path` and loaded fine; otherwise say what happened instead."""
    reader = PageReader(page)
    if page.status != 200 or page.path != path:
        heading = " ".join(reader.heading.split()) or "no heading"
        raise SimulationError(f"{step}: expected {path}, got HTTP {page.status} at {page.path} ({heading})")
    return reader


@dataclass
class Summary:
    participants: int
    finished: int
    ratings: int
    attention_checks: int
    attention_passed: int
    drawings: int


class Simulation:
    """Simulated participants of one study, graded by one policy, over one transport."""

    def __init__(self, study, policy, seed, transport):
        self.study = study
        self.grade = POLICIES[policy]
        self.rng = random.Random(seed)
        self.transport = transport
        self.pids = []

    def url(self, name):
        return reverse(f"ratings:{name}", args=[self.study.slug])

    def run(self, n):
        for number in range(1, n + 1):
            try:
                self.pids.append(self.participant())
            except SimulationError as error:
                raise SimulationError(f"Participant {number} of {n}: {error}") from None
        return self.summary()

    def participant(self):
        """One participant from the recruitment link to the finish page; returns their PROLIFIC_PID."""
        pid = PID_PREFIX + secrets.token_hex(8)
        ids = {"PROLIFIC_PID": pid, "STUDY_ID": "SIMULATED", "SESSION_ID": secrets.token_hex(8)}
        expect(self.transport.get(f"{self.url('landing')}?{urlencode(ids)}"), self.url("landing"), "The link")
        consent = expect(self.transport.get(self.url("consent")), self.url("consent"), "The consent form")
        page = self.transport.post(self.url("consent"), {**consent.fields, "decision": "agree"})
        step = "Agreeing to take part"
        if self.study.asks_for_drawings:
            intro = expect(page, self.url("drawing"), step)
            page = self.transport.post(self.url("drawing"), intro.fields)
            while page.path == self.url("draw"):
                page = self.draw(expect(page, self.url("draw"), "A drawing"))
            step = "The last drawing"
        if self.study.items_per_participant:
            instructions = expect(page, self.url("instructions"), step)
            page = self.transport.post(self.url("instructions"), instructions.fields)
            while page.path == self.url("trial"):
                page = self.answer(expect(page, self.url("trial"), "A sketch"), pid)
            step = "The last answer"
        expect(page, self.url("done"), step)
        return pid

    def draw(self, page):
        """Draw a wobbly circle in one stroke at a steady pace and post it; returns the page that follows."""
        limit_ms = self.study.drawing_seconds * 1000 or DRAWING_MS[1]
        duration = self.rng.randint(min(DRAWING_MS[0], limit_ms), min(DRAWING_MS[1], limit_ms))
        centre, radius = CANVAS_UNITS / 2, CANVAS_UNITS * self.rng.uniform(0.2, 0.4)
        xs, ys, ts = [], [], []
        for i in range(DRAWING_POINTS):
            angle, wobble = 2 * math.pi * i / (DRAWING_POINTS - 1), self.rng.uniform(0.9, 1.1)
            xs.append(round(centre + radius * wobble * math.cos(angle)))
            ys.append(round(centre + radius * wobble * math.sin(angle)))
            ts.append(round(duration * i / (DRAWING_POINTS - 1)))
        return self.transport.post(self.url("draw"), {**page.fields, "strokes": json.dumps([[xs, ys, ts]])})

    def answer(self, trial, pid):
        """Look at the sketch and post a grade for it; returns the page that follows."""
        position = trial.fields.get("position")
        if not (trial.sketch or "").startswith(PNG_DATA_URL):
            raise SimulationError(f"Sketch {position} did not show: its page carries no image")
        # The truth, looked up server-side for the policies that need it (a researcher's tool).
        source = (Assignment.objects.filter(participant__study=self.study, participant__prolific_pid=pid,
                                            position=position)
                  .values_list("stimulus__source", flat=True).first())
        if source is None:
            raise SimulationError(f"Sketch {position} is not one of participant {pid}'s in study {self.study.slug} "
                                  "in this database: is the server using another one?")
        answer = {**trial.fields, "grade": self.grade(source, self.rng),
                  "response_ms": self.rng.randint(*RESPONSE_MS)}
        return self.transport.post(self.url("trial"), answer)

    def summary(self):
        participants = self.study.participants.filter(prolific_pid__in=self.pids)
        ratings = Rating.objects.filter(participant__in=participants)
        checks = ratings.filter(stimulus__source=Stimulus.Source.ATTENTION)
        return Summary(participants=len(self.pids), finished=participants.exclude(finished=None).count(),
                       ratings=ratings.count(), attention_checks=checks.count(),
                       attention_passed=checks.filter(grade=EXPECTED_GRADE).count(),
                       drawings=Drawing.objects.filter(prompt__participant__in=participants).count())
