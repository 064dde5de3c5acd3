"""Confidence intervals for shares of ratings: the crossed (participants x items) cluster bootstrap,
its percentile intervals, and the Wilson interval that floors them."""

import warnings

import numpy as np
import pandas as pd


DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 20240531
CONFIDENCE = 0.95
Z = 1.959963984540054  # the standard normal's 97.5% quantile, for CONFIDENCE
BOOTSTRAP_METHOD = (
    "95% percentile intervals from a two-way (crossed) cluster bootstrap: each resample draws "
    "participants with replacement and, independently, items with replacement within each "
    "source x category x condition cell (the design fixes how many of each were shown); a rating "
    "counts as many times as its participant and its item were both drawn, and the share is "
    "recomputed over all those ratings. Resamples in which a row has no ratings are left out "
    "for that row. An interval is never narrower than the Wilson score interval of its ratings "
    "taken as independent (which keeps it from collapsing to one point when every rating is the "
    "same). Drawing participants and items independently counts the rating-level noise twice, so "
    "the intervals are somewhat conservative (wider than needed)."
)


def crossed_draws(n_participants, item_strata, n_resamples, rng):
    """How often each participant and each item is drawn in each of n_resamples resamples of a
    two-way cluster bootstrap: participants with replacement from all participants, items with
    replacement within their stratum (item_strata[i] is the stratum of item code i). Returns
    ((n_resamples, n_participants), (n_resamples, n_items)) counts."""
    participant_draws = rng.multinomial(n_participants, np.full(n_participants, 1 / n_participants),
                                        size=n_resamples)
    item_draws = np.zeros((n_resamples, len(item_strata)))
    for stratum in np.unique(item_strata):
        members = np.flatnonzero(item_strata == stratum)
        item_draws[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)),
                                                 size=n_resamples)
    return participant_draws, item_draws


def crossed_weights(participant_codes, item_codes, item_strata, n_resamples, rng):
    """(n_resamples, n_ratings) weights of the two-way cluster bootstrap (crossed_draws): a
    rating's weight is (times its participant was drawn) x (times its item was drawn). Codes are
    0..n-1 integers."""
    participant_draws, item_draws = crossed_draws(participant_codes.max() + 1, item_strata, n_resamples, rng)
    return participant_draws[:, participant_codes] * item_draws[:, item_codes]


def resampling_codes(frame):
    """(participant codes, item codes, item strata) of a ratings frame: who and what the bootstrap
    draws, items within their source x category x condition cell."""
    participant_codes = pd.factorize(frame["participant"])[0]
    item_codes, items = pd.factorize(frame["stimulus"])
    cells = frame.drop_duplicates("stimulus").set_index("stimulus").loc[items]
    item_strata = pd.factorize(pd.MultiIndex.from_frame(cells[["source", "category", "condition"]]))[0]
    return participant_codes, item_codes, item_strata


def bootstrap_shares(frame, groups, indicators, n_resamples=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED, chunk=250):
    """Resampled shares: array (n_resamples, n_groups, n_indicators), NaN where a group is empty.

    groups: (n_ratings, n_groups) booleans, which ratings each group (a table row) holds;
    indicators: (n_ratings, n_indicators) 0/1, e.g. "graded real". A share is the weighted
    mean of an indicator over a group's ratings, with crossed_weights as weights.
    """
    participant_codes, item_codes, item_strata = resampling_codes(frame)
    groups = np.asarray(groups, dtype=float)
    indicators = np.asarray(indicators, dtype=float)
    numerators = (groups[:, :, None] * indicators[:, None, :]).reshape(len(frame), -1)
    rng = np.random.default_rng(seed)
    shares = []
    for start in range(0, n_resamples, chunk):
        weights = crossed_weights(participant_codes, item_codes, item_strata,
                                  min(chunk, n_resamples - start), rng)
        totals = weights @ groups
        with np.errstate(invalid="ignore", divide="ignore"):
            shares.append((weights @ numerators).reshape(len(weights), *groups.shape[1:], -1)
                          / totals[:, :, None])
    return np.concatenate(shares)


def bootstrap_share(frame, indicator, n_resamples=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED, chunk=250):
    """bootstrap_shares for one group holding every rating of `frame` and one indicator: the very
    same resamples (same draws from the same seed), summed through participant x item tables
    instead of one weight per rating, which is many times faster for the thousands of simulated
    studies that planning a study takes. Returns (n_resamples,) shares."""
    from scipy import sparse

    participant_codes, item_codes, item_strata = resampling_codes(frame)
    n_participants, n_items = participant_codes.max() + 1, len(item_strata)
    # Per item: its ratings' and hits' totals by participant, as one sparse (items x 2, participants) table.
    totals = sparse.csr_matrix(
        (np.concatenate([np.ones(len(frame)), np.asarray(indicator, dtype=float)]),
         (np.concatenate([item_codes, item_codes + n_items]), np.concatenate([participant_codes] * 2))),
        shape=(2 * n_items, n_participants))
    rng = np.random.default_rng(seed)
    shares = []
    for start in range(0, n_resamples, chunk):
        participant_draws, item_draws = crossed_draws(n_participants, item_strata, min(chunk, n_resamples - start),
                                                      rng)
        drawn = (totals @ participant_draws.T.astype(float)).T  # (resamples, 2 * items)
        ratings, hits = drawn[:, :n_items], drawn[:, n_items:]
        with np.errstate(invalid="ignore", divide="ignore"):
            shares.append((hits * item_draws).sum(axis=1) / (ratings * item_draws).sum(axis=1))
    return np.concatenate(shares)


def wilson_interval(share, n):
    """The Wilson score interval (CONFIDENCE) of a share of n independent trials."""
    share, n = np.asarray(share, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (share + Z * Z / (2 * n)) / (1 + Z * Z / n)
        half = Z / (1 + Z * Z / n) * np.sqrt(share * (1 - share) / n + Z * Z / (4 * n * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def percentile_interval(resampled):
    """The central CONFIDENCE interval along the first axis, ignoring NaN (NaN if all are)."""
    tail = (1 - CONFIDENCE) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as they should
        low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
    return low, high


def share_interval(resampled, share, n):
    """A share's interval as the results give it: the percentile interval of its resamples (first
    axis), never narrower than the Wilson interval of its n ratings taken as independent."""
    low, high = percentile_interval(resampled)
    floor_low, floor_high = wilson_interval(share, n)
    return np.fmin(low, floor_low), np.fmax(high, floor_high)
