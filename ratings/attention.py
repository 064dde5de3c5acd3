"""Attention checks: catch trials whose right answer the instructions give away ("if an image shows
only a meaningless scribble, grade it Fake"), excluded from the metric.

Every study draws its own checks, each from a random seed of its own (kept as the stimulus's
`seed`), so no two studies share one and a check given away on a forum gives nothing away anywhere
else. They differ from sketches in meaning only: the same renderer, as many points as the study's
real sketches in as many strokes as Quick, Draw! drawings have, and PNG files of their sizes.

numpy and the renderer are imported where a check is drawn: the admin and the results import this
module (for EXPECTED_GRADE) and must start without them.
"""

import secrets

from django.db import IntegrityError
from django.db.models.functions import Length

from .models import Rating, Stimulus, StimulusImage

EXPECTED_GRADE = Rating.Grade.FAKE  # a rating of an attention check with any other grade is a failed check
# Quick, Draw! test drawings (pig, face, alarm clock, radio), 5th to 95th percentile: what checks
# are drawn like while a study has too few real sketches to measure its own.
TYPICAL_PNG_BYTES = (3700, 7000)
TYPICAL_POINTS = range(35, 121)
MIN_REAL_SKETCHES = 20
MAX_DRAWS = 200


def attention_kinds(count):
    """The names of a study's first `count` checks."""
    return [f"scribble-{n}" for n in range(1, count + 1)]


def scribble(rng, points):
    """A stroke-3 scribble of `points` rows (as a stimulus's num_points counts them) in one stroke
    per 8 to 12 points (as Quick, Draw! drawings have them), each stroke a walk that turns at random
    by up to 160 degrees at every point, so that lines cross and double back as no drawing of
    anything does. Points lie on whole units, as Quick, Draw! drawings' do."""
    import numpy as np

    from generator.strokes import lines_to_stroke3

    total = points + 1  # stroke-3 keeps the offsets between points: one row fewer than points
    strokes = max(3, round(total / rng.uniform(8, 12)))
    ends = np.sort(rng.choice(np.arange(2, total - 1), strokes - 1, replace=False))  # two points a stroke at least
    lines = []
    for count in np.diff([0, *ends, total]):
        point, heading = rng.uniform(0, 255, 2), rng.uniform(0, 2 * np.pi)
        line = [point]
        for _ in range(count - 1):
            heading += rng.uniform(-2.8, 2.8)
            point = point + rng.uniform(15, 55) * np.array([np.cos(heading), np.sin(heading)])
            line.append(point)
        lines.append(np.round(np.array(line)))
    return lines_to_stroke3(lines)


def attention_png(seed, profile):
    """(drawing, PNG) of the first scribble drawn from `seed` like the sketches of `profile`
    (sketch_profile): as many points as one of them, and a file size within their range; the
    nearest in size if none of MAX_DRAWS is within it."""
    import numpy as np

    from generator.render import sketch_png

    (low, high), points = profile
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(MAX_DRAWS):
        drawing = scribble(rng, int(rng.choice(points)))
        png = sketch_png(drawing)
        miss = max(low - len(png), len(png) - high, 0)
        if best is None or miss < best[0]:
            best = (miss, drawing, png)
        if miss == 0:
            break
    return best[1], best[2]


def sketch_profile(study):
    """((low, high) PNG bytes, point counts) of the study's real sketches: the 5th to 95th
    percentile of their file sizes and their numbers of points; typical Quick, Draw! figures while
    it has fewer than MIN_REAL_SKETCHES."""
    real = (StimulusImage.objects.filter(stimulus__study=study, stimulus__source=Stimulus.Source.REAL)
            .annotate(size=Length("png")).values_list("size", "stimulus__num_points"))
    if len(real) < MIN_REAL_SKETCHES:
        return TYPICAL_PNG_BYTES, list(TYPICAL_POINTS)
    sizes = sorted(size for size, _ in real)
    return (sizes[len(sizes) * 5 // 100], sizes[len(sizes) * 95 // 100]), sorted(points for _, points in real)


def ensure_attention_stimuli(study):
    """Create the `study.attention_checks` catch-trial stimuli that don't exist yet (calling it
    again creates none) and return all of the study's attention stimuli."""
    existing = set(study.stimuli.filter(source=Stimulus.Source.ATTENTION).values_list("dataset_file", flat=True))
    missing = [kind for kind in attention_kinds(study.attention_checks) if kind not in existing]
    profile = sketch_profile(study) if missing else None
    for kind in missing:
        seed = secrets.randbits(63)
        drawing, png = attention_png(seed, profile)
        try:
            Stimulus.create_with_image(png, study=study, source=Stimulus.Source.ATTENTION, dataset_file=kind,
                                       seed=seed, num_points=len(drawing))
        except IntegrityError:
            pass  # another process made this kind meanwhile: keep theirs
    return list(study.stimuli.filter(source=Stimulus.Source.ATTENTION).order_by("pk"))
