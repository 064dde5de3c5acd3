"""Planning a study's size (ratings.stats.planning): the simulated studies, the bootstrap they are
measured by, the search for the number of participants against a brute-force simulation written
here from the definitions, and the spreads measured from ratings."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from ratings.stats.bootstrap import Z, bootstrap_share, bootstrap_shares
from ratings.stats.planning import (MAX_PARTICIPANTS, Assumptions, Design, PlanningError, measured_assumptions, plan,
                                    simulated_ratings)


def test_the_fast_share_draws_the_very_resamples_of_the_results_bootstrap():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"participant": rng.integers(0, 30, 400), "stimulus": rng.integers(0, 50, 400)})
    frame = frame.drop_duplicates(["participant", "stimulus"])
    frame = frame.assign(source="generated", category=frame["stimulus"] % 3, condition=frame["stimulus"] % 2)
    passed = rng.random(len(frame)) < 0.6
    expected = bootstrap_shares(frame, np.ones((len(frame), 1)), passed[:, None], 600, seed=9)[:, 0, 0]
    assert bootstrap_share(frame, passed, 600, seed=9) == pytest.approx(expected, abs=1e-12)


def test_a_simulated_study_spreads_the_sketches_as_the_assignment_does():
    design = Design(sketches=40, per_participant=12, cells=4)
    ratings = simulated_ratings(design, Assumptions(0.7, rater_sd=0.5, sketch_sd=0.5), 50, seed=(3,))
    assert len(ratings) == 50 * 12
    assert not ratings.duplicated(["participant", "stimulus"]).any()  # nobody grades a sketch twice
    per_sketch = ratings.groupby("stimulus").size()
    assert len(per_sketch) == 40 and per_sketch.max() - per_sketch.min() <= 1
    per_cell = ratings.groupby(["participant", "category"]).size().unstack()
    assert (per_cell == 3).all().all()  # each participant: 12 sketches, 3 from each of the 4 cells
    assert ratings["passed"].mean() == pytest.approx(0.7, abs=0.05)


def test_more_participants_keep_the_first_ones():
    design, assumptions = Design(30, 10), Assumptions(0.5)
    few = simulated_ratings(design, assumptions, 20, seed=(1, 2))
    many = simulated_ratings(design, assumptions, 60, seed=(1, 2))
    pd.testing.assert_frame_equal(few, many.iloc[:len(few)])


# The brute force: studies simulated and resampled from the definitions, without the planner's code.
SKETCHES, PER_PARTICIPANT, SHARE, SPREAD, TARGET = 12, 6, 0.6, 0.5, 0.14


def offset_for(share, spread):
    """The logit whose sketches and raters, each spread by `spread` around it, pass `share` on average."""
    total = np.hypot(spread, spread)
    mean = lambda offset: integrate.quad(lambda z: stats.norm.pdf(z) / (1 + np.exp(-(offset + total * z))), -12, 12)[0]
    return optimize.brentq(lambda offset: mean(offset) - share, -10, 10)


def wilson(share, n):
    centre = (share + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * np.sqrt(share * (1 - share) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def brute_force_half_width(n, offset, replicates, resamples, rng):
    """The median half-width of the 95% interval over `replicates` studies of n raters, each
    resampled `resamples` times: raters and sketches drawn with replacement, each rating counted
    (times its rater was drawn) x (times its sketch was drawn); never narrower than Wilson."""
    widths = []
    for _ in range(replicates):
        quality, leniency = rng.normal(0, SPREAD, SKETCHES), rng.normal(0, SPREAD, n)
        order = rng.permutation(SKETCHES)
        items = order[(np.arange(n)[:, None] * PER_PARTICIPANT + np.arange(PER_PARTICIPANT)) % SKETCHES]
        passed = rng.random(items.shape) < 1 / (1 + np.exp(-(offset + leniency[:, None] + quality[items])))
        raters = rng.integers(0, n, (resamples, n)) + n * np.arange(resamples)[:, None]
        sketches = rng.integers(0, SKETCHES, (resamples, SKETCHES)) + SKETCHES * np.arange(resamples)[:, None]
        rater_times = np.bincount(raters.ravel(), minlength=resamples * n).reshape(resamples, n)
        sketch_times = np.bincount(sketches.ravel(), minlength=resamples * SKETCHES).reshape(resamples, SKETCHES)
        weight = rater_times[:, :, None] * sketch_times[:, items]
        shares = (weight * passed).sum(axis=(1, 2)) / weight.sum(axis=(1, 2))
        low, high = np.percentile(shares, [2.5, 97.5])
        floor_low, floor_high = wilson(passed.mean(), passed.size)
        widths.append((max(high, floor_high) - min(low, floor_low)) / 2)
    return np.median(widths)


@pytest.mark.slow
def test_the_plan_matches_a_brute_force_simulation():
    rng = np.random.default_rng(2024)
    offset = offset_for(SHARE, SPREAD)
    brute_force = next(n for n in range(10, 80) if brute_force_half_width(n, offset, 150, 300, rng) <= TARGET)
    found = plan(Design(SKETCHES, PER_PARTICIPANT), Assumptions(SHARE, SPREAD, SPREAD), TARGET)
    assert 20 <= brute_force <= 35  # the case is the one meant: neither the minimum nor out of reach
    assert abs(found.participants - brute_force) <= max(3, 0.15 * brute_force), (found.participants, brute_force)
    assert found.widths[found.participants] <= TARGET + 0.005


def test_a_target_beyond_what_the_sketches_allow_is_not_reached():
    """Sketches differ: with few of them the interval has a floor that no number of raters lowers."""
    found = plan(Design(sketches=8, per_participant=8), Assumptions(0.5, rater_sd=0.3, sketch_sd=2.0), 0.05,
                 replicates=6)
    assert not found.reached
    assert found.widths[MAX_PARTICIPANTS] > 0.05
    assert found.floor > 0.05


def test_a_target_met_by_the_fewest_raters_a_verdict_needs():
    found = plan(Design(200, 100), Assumptions(0.5, 0.0, 0.0), 0.3, replicates=4)
    assert found.participants == 10


@pytest.mark.parametrize("make, message", [
    (lambda: Design(sketches=10, per_participant=11), "cannot grade 11 of 10"),
    (lambda: Design(sketches=10, per_participant=5, cells=11), "cannot fill 11 cells"),
    (lambda: Assumptions(share=1.0), "between 0 and 1"),
    (lambda: Assumptions(share=0.5, rater_sd=-1), "spreads"),
    (lambda: plan(Design(10, 5), Assumptions(0.5), 0.0), "target half-width"),
])
def test_impossible_plans_say_why(make, message):
    with pytest.raises(PlanningError, match=message):
        make()


@pytest.mark.parametrize("truth", [Assumptions(0.6, 1.0, 0.7), Assumptions(0.3, 0.4, 1.5)], ids=str)
def test_the_spreads_are_measured_back_from_simulated_ratings(truth):
    ratings = simulated_ratings(Design(200, 20, 4), truth, 400, seed=(7,))
    measured = measured_assumptions(ratings)
    assert measured.share == pytest.approx(ratings["passed"].mean())
    assert measured.rater_sd == pytest.approx(truth.rater_sd, abs=0.15 + 0.15 * truth.rater_sd)
    assert measured.sketch_sd == pytest.approx(truth.sketch_sd, abs=0.15 + 0.15 * truth.sketch_sd)


def test_without_spread_none_is_measured():
    measured = measured_assumptions(simulated_ratings(Design(200, 20), Assumptions(0.5, 0.0, 0.0), 400, seed=(8,)))
    assert measured.rater_sd < 0.2 and measured.sketch_sd < 0.2
