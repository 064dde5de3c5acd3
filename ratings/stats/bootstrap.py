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


def crossed_weights(participant_codes, item_codes, item_strata, n_resamples, rng):
    """(n_resamples, n_ratings) weights of a two-way cluster bootstrap.

    Participants are drawn with replacement from all participants, items with replacement
    within their stratum; a rating's weight is (times its participant was drawn) x (times its
    item was drawn). Codes are 0..n-1 integers; item_strata[i] is the stratum of item code i.
    """
    n_participants = participant_codes.max() + 1
    n_items = item_codes.max() + 1
    participant_draws = rng.multinomial(n_participants, np.full(n_participants, 1 / n_participants),
                                        size=n_resamples)
    item_draws = np.zeros((n_resamples, n_items))
    for stratum in np.unique(item_strata):
        members = np.flatnonzero(item_strata == stratum)
        item_draws[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)),
                                                 size=n_resamples)
    return participant_draws[:, participant_codes] * item_draws[:, item_codes]


def bootstrap_shares(frame, groups, indicators, n_resamples=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED, chunk=250):
    """Resampled shares: array (n_resamples, n_groups, n_indicators), NaN where a group is empty.

    groups: (n_ratings, n_groups) booleans, which ratings each group (a table row) holds;
    indicators: (n_ratings, n_indicators) 0/1, e.g. "graded real". A share is the weighted
    mean of an indicator over a group's ratings, with crossed_weights as weights.
    """
    participant_codes = pd.factorize(frame["participant"])[0]
    item_codes, items = pd.factorize(frame["stimulus"])
    cells = frame.drop_duplicates("stimulus").set_index("stimulus").loc[items]
    item_strata = pd.factorize(pd.MultiIndex.from_frame(cells[["source", "category", "condition"]]))[0]
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
