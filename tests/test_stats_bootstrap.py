"""The crossed bootstrap and the Wilson interval (ratings.stats.bootstrap)."""

import numpy as np
import pytest

from ratings.stats.bootstrap import bootstrap_shares, crossed_weights, percentile_interval, wilson_interval
from tests.results_data import frame_of


def test_crossed_weights_multiply_participant_and_item_draws_within_strata():
    participants = np.array([0, 0, 1, 1, 2, 2])
    items = np.array([0, 1, 0, 1, 2, 3])
    strata = np.array([0, 0, 1, 1])
    weights = crossed_weights(participants, items, strata, 500, np.random.default_rng(1))
    # Replay the same draws to see each factor.
    rng = np.random.default_rng(1)
    drawn_participants = rng.multinomial(3, [1 / 3] * 3, size=500)
    drawn_items = np.concatenate([rng.multinomial(2, [.5, .5], size=500), rng.multinomial(2, [.5, .5], size=500)],
                                 axis=1)
    assert (weights == drawn_participants[:, participants] * drawn_items[:, items]).all()
    assert (drawn_items[:, :2].sum(axis=1) == 2).all() and (drawn_items[:, 2:].sum(axis=1) == 2).all()


def bootstrap_interval(grades_by_rater, seed=0):
    ratings = frame_of(grades_by_rater).assign(source="generated", category="circle", condition="c")
    passed = ratings["grade"].isin(["real", "possibly_real"]).to_numpy()[:, None]
    resampled = bootstrap_shares(ratings, np.ones((len(ratings), 1), bool), passed, 300, seed)
    low, high = percentile_interval(resampled)
    return low[0, 0], high[0, 0]


def test_bootstrap_resamples_items():
    # Every rater agrees; half the items pass and half do not: only item resampling moves the share.
    ratings = {rater: {f"i{i}": "R" if i < 5 else "F" for i in range(10)} for rater in range(20)}
    low, high = bootstrap_interval(ratings)
    assert low < 0.4 and high > 0.6


def test_bootstrap_resamples_participants():
    # Every item gets the same grades; half the raters pass everything: only rater resampling moves it.
    ratings = {rater: {f"i{i}": "R" if rater < 10 else "F" for i in range(10)} for rater in range(20)}
    low, high = bootstrap_interval(ratings)
    assert low < 0.4 and high > 0.6


def test_bootstrap_is_seeded_and_degenerate_when_everyone_agrees():
    ratings = {rater: {f"i{i}": "RPF"[(rater + i) % 3] for i in range(8)} for rater in range(6)}
    assert bootstrap_interval(ratings, seed=3) == bootstrap_interval(ratings, seed=3)
    assert bootstrap_interval(ratings, seed=3) != bootstrap_interval(ratings, seed=4)
    assert bootstrap_interval({r: {f"i{i}": "P" for i in range(4)} for r in range(3)}) == (1.0, 1.0)


@pytest.mark.parametrize("share, n, expected", [
    (0.5, 100, (0.4038, 0.5962)), (1.0, 10, (0.7225, 1.0)), (0.0, 10, (0.0, 0.2775)), (0.2, 50, (0.1124, 0.3304)),
])
def test_wilson_interval(share, n, expected):
    low, high = wilson_interval(share, n)
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-4)
