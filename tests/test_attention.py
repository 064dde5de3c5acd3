"""Attention checks: drawn per study from seeds of their own, and sketch-like in everything but
meaning (file size, strokes, points), so neither their address, nor their bytes, nor their size
gives them away."""

import numpy as np
import pytest

from generator.data import load_category
from generator.render import sketch_png
from ratings.attention import (TYPICAL_PNG_BYTES, TYPICAL_POINTS, attention_png, ensure_attention_stimuli,
                               sketch_profile)
from ratings.models import Stimulus, Study
from ratings.stimuli import write_stimulus


def checks(study):
    return list(study.stimuli.filter(source=Stimulus.Source.ATTENTION).order_by("pk"))


def strokes(drawing):
    return int(drawing[:, 2].sum())


@pytest.mark.django_db
def test_every_study_draws_checks_of_its_own_from_seeds_it_keeps():
    first, second = (Study.objects.create(slug=slug, attention_checks=3) for slug in ("one", "two"))
    made = [ensure_attention_stimuli(study) for study in (first, second)]
    pngs = [check.png for study_checks in made for check in study_checks]
    assert len(pngs) == 6 and len(set(pngs)) == 6
    for check in checks(first):
        drawing, png = attention_png(check.seed, sketch_profile(first))
        assert png == check.png and check.num_points == len(drawing)  # the seed draws it again
    assert [c.dataset_file for c in checks(first)] == ["scribble-1", "scribble-2", "scribble-3"]
    assert ensure_attention_stimuli(first) == checks(first)  # again: nothing new


@pytest.mark.django_db
def test_without_real_sketches_checks_have_the_sizes_of_typical_sketches():
    study = Study.objects.create(slug="bare", attention_checks=8)
    low, high = TYPICAL_PNG_BYTES
    for check in ensure_attention_stimuli(study):
        assert low <= len(check.png) <= high and check.num_points in TYPICAL_POINTS


@pytest.mark.django_db
def test_checks_are_sketch_like_in_size_strokes_and_points_beside_real_drawings(real_data_dir):
    study = Study.objects.create(slug="pigs", attention_checks=12)
    drawings = load_category("pig", real_data_dir)["test"][:60]
    for index, drawing in enumerate(drawings):
        write_stimulus(study, drawing, category="pig", source=Stimulus.Source.REAL, dataset_file="pig.npz",
                       dataset_split="test", dataset_index=index)
    real_sizes = sorted(len(sketch_png(drawing)) for drawing in drawings)
    real_strokes = [strokes(drawing) for drawing in drawings]
    real_points = [len(drawing) for drawing in drawings]
    for check in ensure_attention_stimuli(study):
        drawing, png = attention_png(check.seed, sketch_profile(study))
        assert real_sizes[2] <= len(png) <= real_sizes[-3]  # within the real files' 5th to 95th percentile
        assert len(drawing) in real_points
        assert min(real_strokes) <= strokes(drawing) <= max(real_strokes)


def test_a_check_is_never_blank():
    for seed in range(20):
        drawing, png = attention_png(seed, (TYPICAL_PNG_BYTES, TYPICAL_POINTS))
        assert strokes(drawing) >= 4 and np.abs(drawing[:, :2]).sum() > 0
