"""The summary table (grade shares by source, category and condition, with bootstrap intervals)
and the per-sketch scores."""

import math

import numpy as np
import pandas as pd

from ratings.models import Rating, Stimulus

from .bootstrap import DEFAULT_BOOTSTRAP, DEFAULT_SEED, bootstrap_shares, share_interval
from .frame import REAL_OR_POSSIBLY


CONDITION_COLUMNS = ["condition", "checkpoint", "temperature", "mode"]
SUMMARY_COLUMNS = ["level", "source", "category", *CONDITION_COLUMNS, "ratings", "raters", "items",
                   *(f"share_{grade}" for grade in Rating.Grade.values), "share_real_or_possibly",
                   "real_or_possibly_ci_low", "real_or_possibly_ci_high", "real_ci_low", "real_ci_high"]


def summary_rows(ratings):
    """[(row description, row mask)]: by source, source x category, generated condition and
    generated condition x category. `condition` is "all" for generated sketches pooled over
    conditions and "" where it does not apply (real sketches)."""
    rows = []

    def add(level, mask, source, category="all", condition=None):
        description = {"level": level, "source": source, "category": category,
                       "condition": "all" if source == Stimulus.Source.GENERATED else "",
                       "checkpoint": "", "temperature": math.nan, "mode": ""}
        description.update(condition or {})
        rows.append((description, np.asarray(mask, dtype=bool)))

    sources = [s for s in (Stimulus.Source.REAL, Stimulus.Source.GENERATED) if (ratings["source"] == s).any()]
    # The claims compare real and generated sketches of the same categories: with both sources
    # rated, a category that only one of them has stays out of the source rows.
    left_out = []
    if len(sources) == 2:
        shared = set.intersection(*(set(ratings.loc[ratings["source"] == s, "category"]) for s in sources))
        left_out = sorted(set(ratings["category"]) - shared) if shared else []
    in_source_rows = ~ratings["category"].isin(left_out)
    for source in sources:
        add("source", (ratings["source"] == source) & in_source_rows, source,
            "all" if not left_out else f"all but {', '.join(left_out)}")
    for source in sources:
        of_source = ratings["source"] == source
        for category in sorted(ratings.loc[of_source, "category"].unique()):
            add("source x category", of_source & (ratings["category"] == category), source, category)
    generated = ratings[ratings["source"] == Stimulus.Source.GENERATED]
    conditions = generated.drop_duplicates("condition_id").sort_values(["checkpoint", "temperature", "condition"])
    for condition_id, *fields in conditions[["condition_id", *CONDITION_COLUMNS]].itertuples(index=False):
        condition = dict(zip(CONDITION_COLUMNS, fields))
        in_condition = (ratings["condition_id"] == condition_id).fillna(False).astype(bool)
        add("condition", in_condition, Stimulus.Source.GENERATED, condition=condition)
        for category in sorted(ratings.loc[in_condition, "category"].unique()):
            add("condition x category", in_condition & (ratings["category"] == category), Stimulus.Source.GENERATED,
                category, condition)
    return rows


def summary_table(ratings, n_resamples=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED):
    """Per source, category and condition: ratings, raters, items, grade shares, and bootstrap
    CIs for the share graded real or possibly real and the share graded real.

    Also returns the resampled shares (n_resamples, rows, [real_or_possibly, real]) so the
    headline's derived figures come from the very same resamples.
    """
    real = (ratings["grade"] == Rating.Grade.REAL).to_numpy()
    real_or_possibly = ratings["grade"].isin(REAL_OR_POSSIBLY).to_numpy()
    rows, masks = [], []
    for description, mask in summary_rows(ratings):
        group = ratings[mask]
        rows.append({
            **description,
            "ratings": len(group), "raters": group["participant"].nunique(), "items": group["stimulus"].nunique(),
            **{f"share_{grade}": (group["grade"] == grade).mean() for grade in Rating.Grade.values},
            "share_real_or_possibly": real_or_possibly[mask].mean(),
        })
        masks.append(mask)
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-4])
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS), np.zeros((n_resamples, 0, 2))
    resampled = bootstrap_shares(ratings, np.column_stack(masks), np.column_stack([real_or_possibly, real]),
                                 n_resamples, seed)
    for k, share in enumerate(["real_or_possibly", "real"]):
        table[f"{share}_ci_low"], table[f"{share}_ci_high"] = share_interval(
            resampled[:, :, k], table[f"share_{share}"], table["ratings"])
    return table, resampled


def item_scores(ratings):
    """Per stimulus: its mean score (SCORE_MAPPING), shares and number of ratings, best first."""
    items = (ratings.assign(real=ratings["grade"] == Rating.Grade.REAL,
                            real_or_possibly=ratings["grade"].isin(REAL_OR_POSSIBLY))
             .groupby("stimulus", sort=False)
             .agg(source=("source", "first"), category=("category", "first"), condition=("condition", "first"),
                  temperature=("temperature", "first"), ratings=("score", "size"), mean_score=("score", "mean"),
                  share_real=("real", "mean"), share_real_or_possibly=("real_or_possibly", "mean"))
             .reset_index())
    return items.sort_values(["mean_score", "ratings", "stimulus"], ascending=[False, False, True]).reset_index(drop=True)


def best_and_worst(items, count=6):
    """Up to `count` best- and worst-scored generated sketches (worst first in its list); with
    fewer than 2 x count sketches they are split in halves, so no sketch is in both lists."""
    generated = items[items["source"] == Stimulus.Source.GENERATED]
    best = generated.head(min(count, (len(generated) + 1) // 2))
    worst = generated.drop(best.index).iloc[::-1].head(count)
    return best, worst
