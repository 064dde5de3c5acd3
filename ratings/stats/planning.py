"""How many participants a study needs: the headline's interval (generated sketches graded real or
possibly real) is computed, by the results' own bootstrap, on simulated studies of a given design, and
the number of participants at which its half-width reaches a target is searched for.

A simulated study draws each sketch's quality and each rater's leniency from normal distributions on
the logit scale (the spreads of Assumptions), grades every (rater, sketch) pair as passed with the
logistic of their sum, and gives every rater the next sketches of one cycle through all of them, as
Study.choose_stimuli spreads them. The assumptions are stated before a study runs, or measured from a
study's ratings so far (measured_assumptions), for its progress.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_share, share_interval
from .headline import MIN_RATERS

PLAN_RESAMPLES = 300  # per simulated study; the median over REPLICATES evens out their noise
REPLICATES = 16
MAX_PARTICIPANTS = 2000
DEFAULT_RATER_SD = 1.0
DEFAULT_SKETCH_SD = 1.0
MAX_SD = 4.0
# Probabilists' Gauss-Hermite nodes and weights: expectations over a standard normal.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


class PlanningError(ValueError):
    """A design or assumption the simulation cannot take; the message says which."""


@dataclass(frozen=True)
class Design:
    """What a study shows of its generated sketches: how many there are, spread evenly over `cells`
    (category x condition cells, within which the bootstrap resamples sketches), and how many of
    them each participant grades."""
    sketches: int
    per_participant: int
    cells: int = 1

    def __post_init__(self):
        if self.per_participant < 1 or self.sketches < 2:
            raise PlanningError("a plan needs at least 2 generated sketches and 1 per participant")
        if self.per_participant > self.sketches:
            raise PlanningError(f"each participant cannot grade {self.per_participant} of {self.sketches} "
                                "generated sketches: nobody grades a sketch twice")
        if not 1 <= self.cells <= self.sketches:
            raise PlanningError(f"{self.sketches} generated sketches cannot fill {self.cells} cells")


@dataclass(frozen=True)
class Assumptions:
    """How generated sketches are graded: `share` of ratings real or possibly real, and on the logit
    scale the spread (standard deviation) of raters' leniency and of sketches' quality."""
    share: float
    rater_sd: float = DEFAULT_RATER_SD
    sketch_sd: float = DEFAULT_SKETCH_SD

    def __post_init__(self):
        if not 0 < self.share < 1:
            raise PlanningError("the assumed share must be between 0 and 1 (0% and 100%), both excluded")
        if not (0 <= self.rater_sd <= MAX_SD and 0 <= self.sketch_sd <= MAX_SD):
            raise PlanningError(f"the spreads of raters and sketches must be between 0 and {MAX_SD:g}")

    @property
    def offset(self):
        """The logit that, with both spreads around it, gives `share` on average."""
        return solve_offset(self.share, self.rater_sd, self.sketch_sd)


def expit(x):
    return 1 / (1 + np.exp(-x))


def _grid(offset, rater_sd, sketch_sd):
    """Pass probabilities on the quadrature grid (rater node x sketch node)."""
    return expit(offset + rater_sd * _NODES[:, None] + sketch_sd * _NODES[None, :])


def solve_offset(share, rater_sd, sketch_sd):
    from scipy.optimize import brentq

    return brentq(lambda offset: _WEIGHTS @ _grid(offset, rater_sd, sketch_sd) @ _WEIGHTS - share, -40, 40)


def implied_moments(offset, rater_sd, sketch_sd):
    """(mean share, variance of raters' mean shares, variance of sketches' mean shares), each
    rater's and sketch's over infinitely many of the other."""
    grid = _grid(offset, rater_sd, sketch_sd)
    by_rater, by_sketch = grid @ _WEIGHTS, _WEIGHTS @ grid
    share = _WEIGHTS @ by_rater
    return share, _WEIGHTS @ by_rater**2 - share**2, _WEIGHTS @ by_sketch**2 - share**2


def simulated_ratings(design, assumptions, participants, seed):
    """One simulated study's ratings of generated sketches: a frame with participant, stimulus,
    source, category, condition (as ratings_frame has them) and `passed`. The same seed gives the
    same sketches and the same first raters whatever `participants` is, so that widths at several
    sizes compare like with like."""
    sketch_rng, rater_rng, grade_rng = (np.random.default_rng([*seed, part]) for part in range(3))
    quality = sketch_rng.normal(0, assumptions.sketch_sd, design.sketches)
    cell = np.arange(design.sketches) % design.cells
    # The cycle: one sketch of each cell in turn, each cell's sketches in a random order.
    rank_in_cell = pd.Series(sketch_rng.random(design.sketches)).groupby(cell).rank(method="first").to_numpy()
    cycle = np.lexsort((cell, rank_in_cell))
    leniency = rater_rng.normal(0, assumptions.rater_sd, participants)
    k = design.per_participant
    slots = (np.arange(participants)[:, None] * k + np.arange(k)[None, :]) % design.sketches
    sketches = cycle[slots]
    passed = grade_rng.random((participants, k)) < expit(assumptions.offset + leniency[:, None] + quality[sketches])
    return pd.DataFrame({
        "participant": np.repeat(np.arange(participants), k), "stimulus": sketches.ravel(),
        "source": "generated", "category": cell[sketches.ravel()], "condition": "", "passed": passed.ravel(),
    })


def headline_interval(ratings, n_resamples, seed):
    """(share, low, high) of `passed` over the ratings, as the results compute the headline's."""
    passed = ratings["passed"].to_numpy(dtype=float)
    share = passed.mean()
    low, high = share_interval(bootstrap_share(ratings, passed, n_resamples, seed), share, len(passed))
    return share, float(low), float(high)


def half_width(design, assumptions, participants, replicates=REPLICATES, n_resamples=PLAN_RESAMPLES, seed=0):
    """The median half-width (high - low) / 2 of the headline's interval over `replicates`
    simulated studies with this many participants."""
    widths = []
    for replicate in range(replicates):
        _, low, high = headline_interval(simulated_ratings(design, assumptions, participants, (seed, replicate)),
                                         n_resamples, (seed, replicate))
        widths.append((high - low) / 2)
    return float(np.median(widths))


@dataclass
class Plan:
    design: Design
    assumptions: Assumptions
    target: float  # half-width, as a share (0.05 for +-5 points)
    participants: int | None  # None: not reached with MAX_PARTICIPANTS
    widths: dict = field(default_factory=dict)  # participants -> simulated median half-width
    floor: float = math.nan  # the half-width that no number of participants gets below, estimated

    @property
    def reached(self):
        return self.participants is not None

    @property
    def half_width(self):
        """The simulated median half-width at the planned number of participants."""
        return self.widths[self.participants] if self.reached else math.nan


def plan(design, assumptions, target, replicates=REPLICATES, n_resamples=PLAN_RESAMPLES, seed=0,
         max_participants=MAX_PARTICIPANTS):
    """The fewest participants (at least the verdict's MIN_RATERS) whose simulated half-width is at
    most `target`.

    The squared half-width falls about as a + b / participants (raters' part shrinks with their
    number, sketches' part only as far as their number allows), so the search takes secant steps on
    that line through the two latest sizes, and ends where a step moves by less than 3%."""
    if not 0 < target < 0.5:
        raise PlanningError("the target half-width must be between 0 and 50 points")
    widths = {}

    def width(n):
        if n not in widths:
            widths[n] = half_width(design, assumptions, n, replicates, n_resamples, seed)
        return widths[n]

    def line(n1, n2):
        """(a, b) of half-width**2 = a + b / n through two sizes."""
        slope = (width(n1) ** 2 - width(n2) ** 2) / (1 / n1 - 1 / n2)
        return width(n2) ** 2 - slope / n2, slope

    low = MIN_RATERS
    if width(low) <= target:
        return Plan(design, assumptions, target, low, widths, _floor(*line(low, 4 * low)))
    previous, current = low, 4 * low
    for _ in range(12):
        a, b = line(previous, current)
        following = max_participants
        if b > 0 and a < target**2:
            following = min(max_participants, max(low + 1, math.ceil(b / (target**2 - a))))
        if following == max_participants and width(max_participants) > target:
            return Plan(design, assumptions, target, None, widths, _floor(*line(current, max_participants)))
        if abs(following - current) <= max(1, 0.03 * following):
            break
        previous, current = current, following
    # Never fewer than one more than a size seen to miss the target.
    missed = max((n for n, w in widths.items() if w > target), default=low)
    participants = max(following, missed + 1)
    width(participants)  # simulated too, for the plan to show
    return Plan(design, assumptions, target, participants, widths, _floor(a, b))


def _floor(a, b):
    return math.sqrt(a) if a > 0 else 0.0


def excess_variance(means, counts, share):
    """The variance of true shares across raters (or sketches), from their observed mean shares
    over `counts` ratings each: the observed variance less the binomial part of it."""
    if len(means) < 2:
        return None
    harmonic = float(np.mean(1 / np.asarray(counts, dtype=float)))
    if harmonic >= 1:
        return None  # one rating each: the two parts cannot be told apart
    observed = float(np.var(means, ddof=1))
    return max(0.0, (observed - share * (1 - share) * harmonic) / (1 - harmonic))


def measured_assumptions(ratings):
    """Assumptions measured from ratings of generated sketches (a frame with participant, stimulus
    and `passed`): the share, and the spreads whose implied variances across raters and sketches
    match the observed ones less their binomial part. Spreads that cannot be measured (fewer than
    two raters or sketches, or one rating each) are the defaults."""
    from scipy.optimize import least_squares

    n = len(ratings)
    share = min(max(ratings["passed"].mean(), 0.5 / n), 1 - 0.5 / n)
    by_rater = ratings.groupby("participant")["passed"].agg(["mean", "size"])
    by_sketch = ratings.groupby("stimulus")["passed"].agg(["mean", "size"])
    rater_var = excess_variance(by_rater["mean"], by_rater["size"], share)
    sketch_var = excess_variance(by_sketch["mean"], by_sketch["size"], share)
    rater_sd = DEFAULT_RATER_SD if rater_var is None else None
    sketch_sd = DEFAULT_SKETCH_SD if sketch_var is None else None

    def residuals(x):
        offset, r, s = x
        r = rater_sd if rater_sd is not None else r
        s = sketch_sd if sketch_sd is not None else s
        mean, r_var, s_var = implied_moments(offset, r, s)
        return [(mean - share) * 10, r_var - (rater_var or 0.0), s_var - (sketch_var or 0.0)]

    start = [math.log(share / (1 - share)), DEFAULT_RATER_SD, DEFAULT_SKETCH_SD]
    fit = least_squares(residuals, start, bounds=([-40, 0, 0], [40, MAX_SD, MAX_SD]))
    return Assumptions(share=float(share),
                       rater_sd=float(rater_sd if rater_sd is not None else fit.x[1]),
                       sketch_sd=float(sketch_sd if sketch_sd is not None else fit.x[2]))
