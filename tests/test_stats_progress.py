"""A running study's progress (ratings.stats.progress) on the hand-made ratings of
tests/results_data.py: four counted participants (A to D) graded every sketch, E is unfinished and
F failed an attention check."""

import pytest
from django.test import Client
from django.utils import timezone

from ratings.models import Participant
from ratings.stats import progress as progress_module
from ratings.stats.progress import participant_counts, study_design, study_progress
from ratings.stats.results import study_results
from tests.participant_steps import answer, start


@pytest.fixture(autouse=True)
def fresh_cache():
    from django.core.cache import cache

    cache.clear()


def progress_of(study, **options):
    return study_progress(study_results(study, bootstrap=200), **options)


def test_ratings_per_cell_against_the_target(rated_study):
    rated_study.target_participants, rated_study.items_per_participant = 10, 8
    rated_study.save()
    cells = progress_of(rated_study, estimate=False).cells
    assert cells[["source", "category", "sketches", "ratings", "target", "done"]].values.tolist() == [
        # 10 participants x 8 items, in proportion to each cell's 2 of the 8 sketches: 20 ratings a cell;
        # A to D graded each sketch once.
        ["real", "circle", 2, 8, 20, "40%"], ["real", "square", 2, 8, 20, "40%"],
        ["generated", "circle", 2, 8, 20, "40%"], ["generated", "square", 2, 8, 20, "40%"],
    ]
    assert cells["per sketch"].tolist() == [4.0] * 4


def test_without_a_target_the_cells_say_so(rated_study):
    progress = progress_of(rated_study, estimate=False)
    assert list(progress.cells) == ["source", "category", "condition", "sketches", "ratings", "per sketch"]
    assert "no target number of participants set: plan_study suggests one" in progress.sentences()[0]


def test_who_consented_started_finished_and_was_excluded(rated_study):
    start(Client(), rated_study)  # pressed Start, answered nothing
    browser = Client()
    start(browser, rated_study)
    answer(browser, rated_study)
    Participant.objects.create(study=rated_study, consented=timezone.now())  # consented only
    # results_data's six were made with no Start time: as participants before it was recorded.
    assert participant_counts(rated_study) == {"consented": 9, "started": 2, "finished": 5, "in_progress": 2,
                                               "excluded": 5}


def test_the_attention_check_failure_rate(rated_study):
    progress = progress_of(rated_study, estimate=False)
    assert progress.attention == {"answered": 5, "failed": 1}  # E graded no check; F failed one
    assert "Attention checks: 1 of the 5 participants who graded one failed (20.0%)." in progress.sentences()


def test_the_headline_intervals_width_now(rated_study):
    results = study_results(rated_study, bootstrap=200)
    progress = study_progress(results, estimate=False)
    generated = results.headline["generated"]
    assert progress.half_width == pytest.approx((generated["ci_high"] - generated["ci_low"]) / 2)
    assert f"now ±{progress.half_width * 100:.1f} points wide (target ±5.0)" in " ".join(progress.sentences())


def test_the_design_the_estimate_simulates(rated_study):
    rated_study.items_per_participant = 6
    design = study_design(rated_study)
    # 4 generated of the 8 sketches: a participant grades 3 of them; circle and square are two cells.
    assert (design.sketches, design.per_participant, design.cells) == (4, 3, 2)


def test_the_estimate_of_participants_needed(rated_study):
    rated_study.target_half_width = 30
    rated_study.save()
    progress = progress_of(rated_study)
    estimate = progress.estimate
    assert estimate.assumptions.share == pytest.approx(9 / 16)  # A to D passed 9 of 16 generated ratings
    assert estimate.target == 0.3 and estimate.reached
    assert progress.more_participants == estimate.participants - 4
    assert estimate.widths[estimate.participants] <= 0.3
    assert f"about {estimate.participants} counted in all, {progress.more_participants} more than now" in \
        progress.estimate_sentence()


def test_a_target_out_of_reach(rated_study):
    rated_study.target_half_width = 0.5
    rated_study.save()
    progress = progress_of(rated_study)
    assert not progress.estimate.reached and progress.more_participants is None
    assert "Participants needed for ±0.5: more than 2000, from the ratings so far" in progress.estimate_sentence()


def test_no_estimate_from_too_few_raters(make_study):
    study = make_study(slug="early", items_per_participant=2, attention=0)
    for _ in range(2):
        browser = Client()
        start(browser, study)
        answer(browser, study)
        answer(browser, study)
    progress = progress_of(study)
    assert progress.estimate is None and progress.participants["counted"] == 2
    assert "needs counted ratings of generated sketches from 3 participants" in progress.estimate_sentence()


def test_the_estimate_is_remembered_for_the_same_ratings(rated_study, monkeypatch):
    rated_study.target_half_width = 30
    rated_study.save()
    plans = []
    real_plan = progress_module.plan
    monkeypatch.setattr(progress_module, "plan", lambda *args: plans.append(args) or real_plan(*args))
    first, again = progress_of(rated_study), progress_of(rated_study)
    assert len(plans) == 1 and first.estimate.participants == again.estimate.participants
