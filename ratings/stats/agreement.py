"""Agreement between raters: Krippendorff's ordinal alpha and Fleiss' kappa, with their sentences."""

import pandas as pd

from ratings.models import Rating


def describe_alpha(krippendorff):
    if krippendorff["alpha"] is None:
        return "Krippendorff's alpha (ordinal): not computable (no item graded by two raters, or no variation)."
    return (f"Krippendorff's alpha (ordinal): {krippendorff['alpha']:.3f} ({krippendorff['raters']} raters, "
            f"{krippendorff['items']} items graded by at least two).")


def describe_kappa(fleiss):
    if fleiss["kappa"] is None:
        return ("Fleiss' kappa: not computable (needs two or more items with the same number of ratings, at "
                "least two each, and some variation).")
    return (f"Fleiss' kappa: {fleiss['kappa']:.3f} over the {fleiss['items']} items with "
            f"{fleiss['ratings_per_item']} ratings each, the most common number "
            f"({fleiss['items_left_out']} items with other numbers left out).")


def krippendorff_alpha(ratings):
    """Krippendorff's alpha, ordinal, over the rater x item matrix of scores (missing = not rated).

    None when it is undefined: no item graded by two raters, or no variation in the grades.
    """
    import krippendorff

    matrix = ratings.pivot(index="participant", columns="stimulus", values="score")
    pairable = int((matrix.notna().sum() >= 2).sum())
    value = None
    if pairable and ratings["score"].nunique() > 1:
        value = float(krippendorff.alpha(reliability_data=matrix.to_numpy(float), value_domain=[0, 1, 2],
                                         level_of_measurement="ordinal"))
    return {"alpha": value, "raters": int(matrix.shape[0]), "items": pairable}


def fleiss_kappa(ratings):
    """Fleiss' kappa (nominal) over the items with the most common number of ratings.

    Fleiss' kappa needs the same number of ratings on every item, so items rated a different
    number of times are left out (and counted); ties between counts go to the larger count.
    None when fewer than two items with at least two ratings each remain or the grades do not vary.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

    table = pd.crosstab(ratings["stimulus"], ratings["grade"]).reindex(columns=Rating.Grade.values, fill_value=0)
    per_item = table.sum(axis=1)
    counts = per_item[per_item >= 2].value_counts()
    result = {"kappa": None, "items": 0, "ratings_per_item": None, "items_left_out": int(len(table))}
    if counts.empty:
        return result
    n = int(counts[counts == counts.max()].index.max())
    kept = table[per_item == n]
    result.update(items=len(kept), ratings_per_item=n, items_left_out=int(len(table) - len(kept)))
    if len(kept) >= 2 and (kept.sum() > 0).sum() > 1:
        result["kappa"] = float(statsmodels_fleiss_kappa(kept.to_numpy()))
    return result
