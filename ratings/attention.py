"""Attention checks: catch trials whose right answer the instructions give away ("if an image is
blank or shows only a meaningless scribble, grade it Fake"). They are rendered by the same
renderer as every other stimulus, so only their content differs, and are excluded from the metric.

numpy and the renderer are imported where a check is drawn: the admin and the results import
this module for EXPECTED_GRADE and must start without them.
"""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction

from generator.files import atomic_write

from .models import Rating, Stimulus

EXPECTED_GRADE = Rating.Grade.FAKE  # a rating of an attention check with any other grade is a failed check
SCRIBBLE_POINTS = 36


def attention_kinds(count):
    """The first `count` kinds of catch trial: a blank canvas, then numbered scribbles."""
    return ["blank", *(f"scribble-{n}" for n in range(1, count))][:count]


def attention_drawing(kind):
    """The stroke-3 drawing of one kind of catch trial; a kind always gives the same drawing."""
    import numpy as np

    if kind == "blank":
        return np.zeros((0, 3), dtype=np.float32)
    number = int(kind.removeprefix("scribble-"))
    rng = np.random.default_rng(number)
    # One stroke scratched back and forth across the whole canvas, as if crossing it out, at an
    # angle that differs per scribble: unmistakably not a drawing of anything.
    across = np.where(np.arange(SCRIBBLE_POINTS) % 2, 1.0, -1.0) * 100 + rng.normal(0, 8, SCRIBBLE_POINTS)
    down = np.linspace(-100, 100, SCRIBBLE_POINTS) + rng.normal(0, 4, SCRIBBLE_POINTS)
    angle = number * 0.7
    x = across * np.cos(angle) - down * np.sin(angle)
    y = across * np.sin(angle) + down * np.cos(angle)
    drawing = np.zeros((SCRIBBLE_POINTS - 1, 3), dtype=np.float32)
    drawing[:, 0], drawing[:, 1] = np.diff(x), np.diff(y)
    drawing[-1, 2] = 1
    return drawing


def save_stimulus_png(study, png):
    """Write a stimulus image under MEDIA_ROOT with a random name; returns its relative path."""
    name = f"stimuli/{study.pk}/{secrets.token_urlsafe(12)}.png"
    path = settings.MEDIA_ROOT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        temporary.write_bytes(png)
    return name


def ensure_attention_stimuli(study):
    """Create the `study.attention_checks` catch-trial stimuli that don't exist yet (calling it
    again creates none) and return all of the study's attention stimuli."""
    from generator.render import sketch_png

    existing = set(study.stimuli.filter(source=Stimulus.Source.ATTENTION).values_list("dataset_file", flat=True))
    for kind in attention_kinds(study.attention_checks):
        if kind in existing:
            continue
        drawing = attention_drawing(kind)
        image = save_stimulus_png(study, sketch_png(drawing))
        try:
            with transaction.atomic():
                Stimulus.objects.create(study=study, image=image, source=Stimulus.Source.ATTENTION,
                                        dataset_file=kind, num_points=len(drawing))
        except IntegrityError:
            # Another process made this kind meanwhile: keep theirs.
            (settings.MEDIA_ROOT / image).unlink()
    return list(study.stimuli.filter(source=Stimulus.Source.ATTENTION).order_by("pk"))
