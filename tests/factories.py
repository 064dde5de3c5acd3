"""Test data built through the same renderer and models the real commands use."""

import itertools

import numpy as np
from django.utils import timezone

from generator.data import load_npz
from generator.render import sketch_png
from ratings.attention import ensure_attention_stimuli
from ratings.models import Condition, Participant, Rating, Stimulus, Study

from .conftest import FIXTURE_DATA_DIR

_counter = itertools.count()


def build_study(slug=None, categories=("circle", "square"), real=4, generated=4, temperatures=(0.5,),
                attention=2, **fields):
    study = Study.objects.create(slug=slug or f"study-{next(_counter)}", attention_checks=attention, **fields)
    drawings = {c: load_npz(FIXTURE_DATA_DIR / f"{c}.npz")["test"] for c in categories}
    for category in categories:
        for index in range(real):
            Stimulus.create_with_image(
                sketch_png(drawings[category][index]), study=study, category=category,
                source=Stimulus.Source.REAL, dataset_file=f"{category}.npz", dataset_split="test",
                dataset_index=index, num_points=len(drawings[category][index]),
            )
    for temperature in temperatures:
        condition = Condition.objects.create(study=study, checkpoint_sha256="0" * 64, checkpoint_name="test.pt",
                                             temperature=temperature, mode=Condition.Mode.UNCONDITIONAL)
        for category in categories:
            for index in range(generated):
                # A "generated" sketch: a real drawing, mirrored, stands in for a model's sample.
                drawing = drawings[category][-1 - index].astype(np.float32) * np.array([-1, 1, 1])
                Stimulus.create_with_image(
                    sketch_png(drawing), study=study, category=category, source=Stimulus.Source.GENERATED,
                    condition=condition, seed=0, sample_index=index, ended=True, num_points=len(drawing),
                )
    ensure_attention_stimuli(study)
    return study


# The replication's ten categories (issue 27), each made by a checkpoint of its own.
TEN_CATEGORIES = ("pig", "face", "alarm_clock", "radio", "airplane", "apple", "butterfly", "cactus", "crab", "duck")


def build_ten_category_study(slug="ten", participants=30, per_category=4, items_per_participant=40, seed=0):
    """A study of the ten categories as generate_samples makes it from ten checkpoints (one generation
    condition per category; fixture circles and squares stand in for the drawings), graded by
    `participants` finished participants through the real assignment, each grade drawn at random with
    odds that differ by category and source."""
    study = Study.objects.create(slug=slug, title="Ten categories", items_per_participant=items_per_participant,
                                 attention_checks=2, completion_code="TEN")
    shapes = {name: load_npz(FIXTURE_DATA_DIR / f"{name}.npz")["test"] for name in ("circle", "square")}
    for k, category in enumerate(TEN_CATEGORIES):
        drawings = shapes["circle" if k % 2 else "square"]
        condition = Condition.objects.create(study=study, checkpoint_sha256=f"{k:x}" * 64, checkpoint_name=f"{category}.pt",
                                             temperature=0.5, mode=Condition.Mode.UNCONDITIONAL)
        for index in range(per_category):
            Stimulus.create_with_image(sketch_png(drawings[index]), study=study, category=category,
                                       source=Stimulus.Source.REAL, dataset_file=f"{category}.npz",
                                       dataset_split="test", dataset_index=index, num_points=len(drawings[index]))
            drawing = drawings[-1 - index].astype(np.float32) * np.array([-1, 1, 1])
            Stimulus.create_with_image(sketch_png(drawing), study=study, category=category,
                                       source=Stimulus.Source.GENERATED, condition=condition, seed=0,
                                       sample_index=index, ended=True, num_points=len(drawing))
    ensure_attention_stimuli(study)
    rng = np.random.default_rng(seed)
    passes = {(source, category): rng.uniform(0.3, 0.9) for source in ("real", "generated") for category in TEN_CATEGORIES}
    for n in range(participants):
        participant = Participant.objects.create(study=study, prolific_pid=f"ten-{n}", consented=timezone.now())
        participant.assign()
        ratings = []
        for assignment in participant.assignments.select_related("stimulus"):
            stimulus = assignment.stimulus
            if stimulus.source == Stimulus.Source.ATTENTION:
                grade = Rating.Grade.FAKE
            else:
                passed = rng.random() < passes[(stimulus.source, stimulus.category)]
                grade = rng.choice([Rating.Grade.REAL, Rating.Grade.POSSIBLY_REAL]) if passed else Rating.Grade.FAKE
            ratings.append(Rating(participant=participant, stimulus=stimulus, grade=grade, response_ms=1500,
                                  position=assignment.position))
        Rating.objects.bulk_create(ratings)
        Participant.objects.filter(pk=participant.pk).update(finished=timezone.now())
    return study
