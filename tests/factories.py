"""Test data built through the same renderer and models the real commands use."""

import itertools
import secrets

import numpy as np
from django.conf import settings

from generator.data import load_npz
from generator.render import sketch_png
from ratings.attention import ensure_attention_stimuli
from ratings.models import Condition, Stimulus, Study

from .conftest import FIXTURE_DATA_DIR

_counter = itertools.count()


def write_png(stroke3):
    name = f"stimuli/test/{secrets.token_urlsafe(12)}.png"
    path = settings.MEDIA_ROOT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sketch_png(stroke3))
    return name


def build_study(slug=None, categories=("circle", "square"), real=4, generated=4, temperatures=(0.5,),
                attention=2, **fields):
    study = Study.objects.create(slug=slug or f"study-{next(_counter)}", attention_checks=attention, **fields)
    drawings = {c: load_npz(FIXTURE_DATA_DIR / f"{c}.npz")["test"] for c in categories}
    for category in categories:
        for index in range(real):
            Stimulus.objects.create(
                study=study, image=write_png(drawings[category][index]), category=category,
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
                Stimulus.objects.create(
                    study=study, image=write_png(drawing), category=category, source=Stimulus.Source.GENERATED,
                    condition=condition, seed=0, sample_index=index, ended=True, num_points=len(drawing),
                )
    ensure_attention_stimuli(study)
    return study
