"""The drawing task: the prompts each participant is given ("Draw a pig"), the drawings they send,
the checks a drawing's post must pass, and how a drawing becomes stroke-3.

A drawing is kept as it was drawn, in the raw Quick, Draw! layout: per stroke [[xs], [ys], [ts]],
x and y in canvas units (0 to CANVAS_UNITS, y downwards) and t in milliseconds since the drawing's
first point. Its stroke-3 form is made from that when it is needed, by the dataset's documented
simplification (generator.strokes.raw_to_stroke3, the code that reads raw ndjson files too).

Each drawing has a random `key_id`, as Quick, Draw!'s drawings do. Exported files carry it, and a
stimulus made from an exported drawing records it (Stimulus.dataset_key): that is how a grading
study keeps every participant's own drawings from them (Participant.own_drawing_keys).

The models refer to the study's models by name, and its functions import models.py where they
run: models.py imports this module at its end, which registers these models with the app.
"""

import json
import math
import random
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count

CANVAS_UNITS = 1000  # the canvas's side, whatever its size on screen, in the units points are kept in
MAX_STROKES = 200
MAX_POINTS = 10_000  # all strokes together; the page records a point only when it moved a unit
MAX_STROKES_BYTES = 256 * 1024  # the strokes as posted, JSON
UNTIMED_MAX_MS = 10 * 60 * 1000  # without a time limit: longer than anyone draws one sketch
TIME_LIMIT_GRACE_MS = 1000  # the page's clock and its events' times may part by a little
FAST_MS = 1000  # drawings finished in less time are flagged for the researcher's review
DOT_SPAN = CANVAS_UNITS // 100  # a drawing whose points all lie this close together is a dot


def new_key_id():
    """A random 16-digit key, as Quick, Draw!'s key_id."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def prompt_text(category):
    """What the page asks for: 'Draw a pig', 'Draw an alarm clock'."""
    words = category.replace("_", " ").strip()
    return f"Draw {'an' if words[:1].lower() in 'aeiou' else 'a'} {words}"


def read_strokes(text, time_limit_s):
    """The strokes of a drawing's post, checked; raises ValidationError saying what is wrong.

    Accepted: JSON, at most MAX_STROKES_BYTES, a list of at most MAX_STROKES strokes, each
    [[xs], [ys], [ts]] of one length (at least one point), at most MAX_POINTS points in all; x and
    y finite numbers on the canvas; t whole milliseconds, 0 at the first point, never going back,
    the last within the time limit (`time_limit_s`, 0 for none) and a little grace."""
    if len(text.encode("utf-8")) > MAX_STROKES_BYTES:
        raise ValidationError(f"The drawing is larger than {MAX_STROKES_BYTES} bytes.")
    try:
        strokes = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ValidationError("The drawing is not JSON.") from None
    if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
        raise ValidationError(f"The drawing is not a list of at most {MAX_STROKES} strokes.")
    points, last_t = 0, None
    for stroke in strokes:
        if not (isinstance(stroke, list) and len(stroke) == 3 and all(isinstance(values, list) for values in stroke)
                and len(stroke[0]) == len(stroke[1]) == len(stroke[2]) >= 1):
            raise ValidationError("A stroke is not [[xs], [ys], [ts]] of one length.")
        points += len(stroke[0])
        if points > MAX_POINTS:
            raise ValidationError(f"The drawing has more than {MAX_POINTS} points.")
        for x, y, t in zip(*stroke):
            if not (_on_canvas(x) and _on_canvas(y)):
                raise ValidationError("A point is not a pair of numbers on the canvas.")
            if type(t) is not int or t < (0 if last_t is None else last_t) or (last_t is None and t != 0):
                raise ValidationError("The times are not whole milliseconds from 0 that never go back.")
            last_t = t
    limit_ms = time_limit_s * 1000 + TIME_LIMIT_GRACE_MS if time_limit_s else UNTIMED_MAX_MS
    if last_t is not None and last_t > limit_ms:
        raise ValidationError("The drawing took longer than its time limit.")
    return strokes


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number")  # NaN, Infinity, -Infinity: Python's json takes them


def _on_canvas(value):
    # type(), not isinstance(): true and false are ints to Python, not coordinates.
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= CANVAS_UNITS


class DrawingPrompt(models.Model):
    """One thing a participant is asked to draw, at its place in their fixed sequence of prompts."""

    participant = models.ForeignKey("ratings.Participant", on_delete=models.CASCADE, related_name="prompts")
    position = models.PositiveIntegerField()
    category = models.CharField(max_length=100)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["participant", "position"], name="unique_prompt_position")]

    def __str__(self):
        return f"{self.participant} {self.position}: {self.category}"

    @property
    def text(self):
        return prompt_text(self.category)

    @classmethod
    def assign(cls, participant):
        """Fix the participant's prompts, once: `drawings_per_participant` of the study's drawing
        categories, in rounds that hold each category once, the categories prompted least often
        in the study first (so that a study with more categories than prompts per person still
        gets about as many drawings of each), in a random order seeded from the token."""
        from .models import Study

        with transaction.atomic():
            # Lock the study: participants starting at once count each other's prompts.
            study = Study.objects.select_for_update().get(pk=participant.study_id)
            if participant.prompts.exists():
                return
            categories = study.drawing_category_list
            if not categories:
                return
            rng = random.Random(f"{participant.token}:prompts")
            prompted = dict(cls.objects.filter(participant__study=study).values_list("category")
                            .annotate(n=Count("pk")))
            chosen = []
            while len(chosen) < study.drawings_per_participant:
                ranked = sorted(categories, key=lambda category: (prompted.get(category, 0), rng.random()))
                taken = ranked[:study.drawings_per_participant - len(chosen)]
                rng.shuffle(taken)
                chosen += taken
            cls.objects.bulk_create(cls(participant=participant, position=position, category=category)
                                    for position, category in enumerate(chosen, start=1))
            participant.mark_started()

    @classmethod
    def next_for(cls, participant):
        """The participant's first prompt without a drawing, or None."""
        return participant.prompts.filter(drawing__isnull=True).first()


class Drawing(models.Model):
    """A participant's drawing of one prompt, as drawn; accepted unless a rejection is given."""

    class Rejection(models.TextChoices):
        OFF_TOPIC = "off_topic", "Off-topic"
        TEXT = "text", "Text or symbols"
        OFFENSIVE = "offensive", "Offensive"
        OTHER = "other", "Other (see the note)"
        # Given when the drawing arrives:
        EMPTY = "empty", "Empty"
        DOT = "dot", "A single dot"

    prompt = models.OneToOneField(DrawingPrompt, on_delete=models.CASCADE, related_name="drawing")
    key_id = models.CharField(max_length=20, unique=True, default=new_key_id, editable=False)
    strokes = models.JSONField(help_text="As drawn: [[xs], [ys], [ts]] per stroke; canvas units, "
                                         "milliseconds since the first point.")
    duration_ms = models.PositiveIntegerField(help_text="From the first point to the last.")
    rejection = models.CharField(max_length=20, choices=Rejection.choices, blank=True,
                                 help_text="Empty: accepted (exported by export_drawings).")
    rejection_note = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return f"{self.key_id} ({self.prompt.category})"

    @property
    def accepted(self):
        return not self.rejection

    @property
    def too_fast(self):
        return self.duration_ms < FAST_MS

    def clean(self):
        if self.rejection == self.Rejection.OTHER and not self.rejection_note.strip():
            raise ValidationError({"rejection_note": "Say why the drawing is rejected."})

    def stroke3(self):
        """The drawing as the dataset's simplified stroke-3 (int16; empty for an empty drawing)."""
        import numpy as np

        from generator.strokes import raw_to_stroke3

        return raw_to_stroke3(self.strokes).astype(np.int16)

    @classmethod
    def record(cls, participant, position, strokes):
        """Store the drawing of the prompt at `position`, which must be the next one without a
        drawing. Returns False, storing nothing, when that prompt has one already (a second post
        of the page, a second tab). Raises NotAssigned for a position the participant does not
        have and OutOfOrder for one ahead of their next prompt."""
        from .models import NotAssigned, OutOfOrder

        prompt = participant.prompts.filter(position=position).first()
        if prompt is None:
            raise NotAssigned(position)
        next_up = DrawingPrompt.next_for(participant)
        if next_up is None or position < next_up.position:
            return False
        if position > next_up.position:
            raise OutOfOrder(position)
        try:
            with transaction.atomic():
                cls.objects.create(prompt=prompt, strokes=strokes, duration_ms=strokes[-1][2][-1] if strokes else 0,
                                   rejection=arrival_rejection(strokes))
        except IntegrityError:
            return False  # the same post, stored by a concurrent request
        participant.finish_if_done()
        return True


def arrival_rejection(strokes):
    """Empty and dot drawings are rejected as they arrive (and kept, so the participant goes on)."""
    points = [(x, y) for xs, ys, _ in strokes for x, y in zip(xs, ys)]
    if not points:
        return Drawing.Rejection.EMPTY
    xs, ys = zip(*points)
    if max(xs) - min(xs) <= DOT_SPAN and max(ys) - min(ys) <= DOT_SPAN:
        return Drawing.Rejection.DOT
    return ""
