"""A study of ten categories, one checkpoint each, as the replication runs it: generate_samples
builds it balanced, and every participant gets every category from both sources."""

import shutil
from collections import Counter

import pytest
import torch
from django.core.management import call_command
from django.utils import timezone

from generator.checkpoint import save_checkpoint
from generator.model import Config, SketchRNN
from ratings.models import Participant, Study

TEN = [f"shape{k}" for k in range(10)]


@pytest.fixture
def ten_categories(tmp_path, fixture_data_dir):
    """Ten categories of fixture drawings, and an untrained tiny checkpoint for each."""
    data, models = tmp_path / "data", tmp_path / "models"
    data.mkdir(), models.mkdir()
    paths = []
    for k, category in enumerate(TEN):
        shutil.copy(fixture_data_dir / ("circle.npz" if k % 2 else "square.npz"), data / f"{category}.npz")
        torch.manual_seed(k)
        config = Config(categories=(category,), enc_size=8, dec_size=8, z_size=4, num_mixture=2, max_seq_len=40)
        save_checkpoint({"config": config.to_dict(), "model": SketchRNN(config).state_dict(), "scale_factor": 20.0,
                         "n_max": 40, "step": 0, "init_from": None}, models / f"{category}.pt")
        paths.append(models / f"{category}.pt")
    return data, paths


@pytest.mark.django_db
def test_ten_checkpoints_make_one_balanced_study(ten_categories):
    data, paths = ten_categories
    call_command("generate_samples", "--study", "ten", *[a for p in paths for a in ("--checkpoint", str(p))],
                 "--real", "40", "--generated", "40", "--data-dir", str(data))
    study = Study.objects.get(slug="ten")
    stimuli = Counter((s.source, s.category) for s in study.stimuli.exclude(source="attention"))
    assert stimuli == {(source, c): 4 for source in ("real", "generated") for c in TEN}
    assert study.conditions.count() == 10

    study.items_per_participant = 20
    study.attention_checks = 0
    study.save()
    shown = Counter()
    for k in range(8):
        participant = Participant.objects.create(study=study, consented=timezone.now(), token=f"p{k}")
        participant.assign()
        items = [a.stimulus for a in participant.assignments.select_related("stimulus")]
        # One real and one generated sketch of every category, for every participant.
        assert Counter((s.source, s.category) for s in items) == {(source, c): 1 for source in ("real", "generated")
                                                                  for c in TEN}
        shown.update(s.pk for s in items)
    # 8 participants x 20 items over 80 sketches: each shown twice.
    assert set(shown.values()) == {2} and len(shown) == 80
