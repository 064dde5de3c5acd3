"""The study's results: computed once here from the ratings, and rendered by the results page,
the `study_report` command and the CSV exports, so the three agree by construction.

Everything works on a tidy pandas DataFrame with one row per rating, built from the database in
one query by `ratings_frame`. `study_results` turns a study into a `StudyResults`: stimulus
counts, exclusions, the summary table with bootstrap confidence intervals, the headline with its
verdicts, per-item scores and agreement between raters.
"""

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db.models import Count

from .models import Assignment, Participant, Rating, Stimulus

GRADES = ["real", "possibly_real", "fake"]
GRADE_LABELS = {"real": "Real", "possibly_real": "Possibly real", "fake": "Fake"}
# Per-item scores and Krippendorff's ordinal alpha use this order of the grades.
GRADE_SCORES = {"fake": 0, "possibly_real": 1, "real": 2}
SCORE_MAPPING = "real = 2, possibly real = 1, fake = 0"
THRESHOLD = 0.5
DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 20240531
CONFIDENCE = 0.95
Z = 1.959963984540054  # the standard normal's 97.5% quantile, for CONFIDENCE
# A claim's verdict needs this many raters and sketches behind its share: with fewer, resampling
# them cannot show how much people and sketches differ (one rater gives a zero-width interval).
MIN_RATERS = 10
MIN_SKETCHES = 10

ATTENTION_EXPECTED_GRADE = "fake"  # the instructions tell participants to grade catch trials Fake
UNFINISHED = "unfinished"
FAILED_ATTENTION = "failed attention check"
ATTENTION_RULE = "a participant fails the attention checks if they graded any attention-check sketch other than Fake"
UNFINISHED_RULE = "a participant is unfinished if they never reached the end of the study"

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
ERROR_RATE_METHOD = (
    "Discrimination error rate (HYPE-style): a rater is taken to say 'real' when they grade a "
    "sketch real or possibly real, and 'fake' otherwise. The error rate is the mean of two "
    "per-source rates, real sketches graded fake and generated sketches graded real or possibly "
    "real, so an unbalanced number of real and generated ratings does not bias it. 50% means "
    "raters could not tell generated from real sketches; 0% means they always could."
)


def condition_label(checkpoint_name, checkpoint_sha256, temperature, mode, reject_degenerate):
    label = f"{checkpoint_name} ({checkpoint_sha256[:8]}) t={temperature:g} {mode}"
    return label + (" rejecting degenerate" if reject_degenerate else "")


def fails_attention(attention_grades):
    """The attention-check rule (ATTENTION_RULE), given one participant's attention-check grades."""
    return bool((pd.Series(attention_grades) != ATTENTION_EXPECTED_GRADE).any())


# --- The data -------------------------------------------------------------------------------

RATING_FIELDS = {
    "participant": "participant__token",
    "prolific_pid": "participant__prolific_pid",
    "external_study_id": "participant__external_study_id",
    "external_session_id": "participant__external_session_id",
    "finished": "participant__finished",
    "stimulus": "stimulus__public_id",
    "category": "stimulus__category",
    "source": "stimulus__source",
    "condition_id": "stimulus__condition_id",
    "checkpoint": "stimulus__condition__checkpoint_name",
    "checkpoint_sha256": "stimulus__condition__checkpoint_sha256",
    "temperature": "stimulus__condition__temperature",
    "mode": "stimulus__condition__mode",
    "reject_degenerate": "stimulus__condition__reject_degenerate",
    "grade": "grade",
    "response_ms": "response_ms",
    "position": "position",
    "created": "created",
}


def participants_frame(study):
    rows = Participant.objects.filter(study=study).values_list("token", "finished")
    frame = pd.DataFrame(list(rows), columns=["participant", "finished"])
    frame["finished"] = frame["finished"].notna()
    return frame


def is_simulated(prolific_pids):
    return prolific_pids.str.startswith(Participant.SIMULATED_PID_PREFIX).astype(bool)


def ratings_frame(study, participants=None):
    """Every rating of the study, one row each, with its participant's exclusion ("" if none).

    Columns: those of RATING_FIELDS (with `finished` a boolean), plus `simulated` (a dry run's
    participant, see simulate_participants), `condition` (a label,
    "" for real sketches and attention checks), `score` (SCORE_MAPPING), `attention_check` and
    `exclusion` (the reasons, joined by "; ").
    """
    rows = (Rating.objects.filter(participant__study=study)
            .order_by("participant__started", "participant_id", "position")
            .values_list(*RATING_FIELDS.values()))
    frame = pd.DataFrame(list(rows), columns=list(RATING_FIELDS))
    frame["finished"] = frame["finished"].notna()
    frame["simulated"] = is_simulated(frame["prolific_pid"])
    frame["temperature"] = frame["temperature"].astype(float)
    frame["response_ms"] = frame["response_ms"].astype("Int64")  # may be missing (no JavaScript)
    frame["condition_id"] = frame["condition_id"].astype("Int64")
    frame["condition"] = [
        condition_label(*fields) if pd.notna(fields[2]) else ""
        for fields in zip(frame["checkpoint"], frame["checkpoint_sha256"], frame["temperature"],
                          frame["mode"], frame["reject_degenerate"])
    ]
    for column in ("checkpoint", "checkpoint_sha256", "mode"):
        frame[column] = frame[column].fillna("")
    frame["score"] = frame["grade"].map(GRADE_SCORES).astype(int)
    frame["attention_check"] = frame["source"] == Stimulus.Source.ATTENTION
    reasons = exclusion_reasons(participants if participants is not None else participants_frame(study), frame)
    frame["exclusion"] = [reasons.get(token, "") for token in frame["participant"]]
    return frame


def exclusion_reasons(participants, ratings):
    """{participant token: "; "-joined reasons} for every participant with at least one reason."""
    failed = (ratings[ratings["attention_check"]].groupby("participant")["grade"].agg(fails_attention))
    failed_tokens = set(failed[failed].index)
    reasons = {}
    for token, finished in zip(participants["participant"], participants["finished"]):
        found = ([] if finished else [UNFINISHED]) + ([FAILED_ATTENTION] if token in failed_tokens else [])
        if found:
            reasons[token] = "; ".join(found)
    return reasons


def counted_ratings(frame, include_excluded=False):
    """The ratings the metric counts: never attention checks; excluded participants only if asked."""
    keep = ~frame["attention_check"]
    if not include_excluded:
        keep &= frame["exclusion"] == ""
    return frame[keep].reset_index(drop=True)


def stimulus_counts(study):
    """Stimuli by source, category and condition (attention checks by kind)."""
    rows = (Stimulus.objects.filter(study=study)
            .values_list("source", "category", "dataset_file", "condition__checkpoint_name",
                         "condition__checkpoint_sha256", "condition__temperature", "condition__mode",
                         "condition__reject_degenerate"))
    counts = {}
    for source, category, dataset_file, *condition in rows:
        if source == Stimulus.Source.ATTENTION:
            category = f"({dataset_file or 'check'})"
        label = condition_label(*condition) if condition[0] is not None else ""
        counts[(source, category, label)] = counts.get((source, category, label), 0) + 1
    frame = pd.DataFrame([(*key, n) for key, n in counts.items()],
                         columns=["source", "category", "condition", "stimuli"])
    frame["source"] = pd.Categorical(frame["source"], categories=Stimulus.Source.values, ordered=True)
    return frame.sort_values(["source", "condition", "category"]).reset_index(drop=True)


# --- The bootstrap --------------------------------------------------------------------------

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


# --- The tables -----------------------------------------------------------------------------

SUMMARY_LEVELS = ["source", "source x category", "condition", "condition x category"]
CONDITION_COLUMNS = ["condition", "checkpoint", "temperature", "mode"]
SUMMARY_COLUMNS = ["level", "source", "category", *CONDITION_COLUMNS, "ratings", "raters", "items",
                   *(f"share_{grade}" for grade in GRADES), "share_real_or_possibly",
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
    real = (ratings["grade"] == "real").to_numpy()
    real_or_possibly = ratings["grade"].isin(["real", "possibly_real"]).to_numpy()
    rows, masks = [], []
    for description, mask in summary_rows(ratings):
        group = ratings[mask]
        rows.append({
            **description,
            "ratings": len(group), "raters": group["participant"].nunique(), "items": group["stimulus"].nunique(),
            **{f"share_{grade}": (group["grade"] == grade).mean() for grade in GRADES},
            "share_real_or_possibly": real_or_possibly[mask].mean(),
        })
        masks.append(mask)
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-4])
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS), np.zeros((n_resamples, 0, 2))
    resampled = bootstrap_shares(ratings, np.column_stack(masks), np.column_stack([real_or_possibly, real]),
                                 n_resamples, seed)
    low, high = percentile_interval(resampled)
    for k, share in enumerate(["real_or_possibly", "real"]):
        floor_low, floor_high = wilson_interval(table[f"share_{share}"], table["ratings"])
        table[f"{share}_ci_low"] = np.fmin(low[:, k], floor_low)
        table[f"{share}_ci_high"] = np.fmax(high[:, k], floor_high)
    return table, resampled


def item_scores(ratings):
    """Per stimulus: its mean score (SCORE_MAPPING), shares and number of ratings, best first."""
    items = (ratings.assign(real=ratings["grade"] == "real",
                            real_or_possibly=ratings["grade"].isin(["real", "possibly_real"]))
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


# --- Headline and agreement -----------------------------------------------------------------

def verdict(low, high, threshold=THRESHOLD):
    """'supported' if the whole interval is above the threshold, 'not supported' if it is at or
    below it, else 'inconclusive'."""
    if math.isnan(low) or math.isnan(high):
        return "no data"
    if low > threshold:
        return "supported"
    if high <= threshold:
        return "not supported"
    return "inconclusive"


VERDICT_REASONS = {
    "supported": "the whole interval is above 50%",
    "not supported": "the whole interval is at or below 50%",
    "inconclusive": "the interval includes 50%",
    "no data": "there are no ratings",
    "too little data": f"a verdict needs at least {MIN_RATERS} raters and {MIN_SKETCHES} sketches",
}
VERDICT_RULE = (f"supported if the 95% CI's lower bound is above 50%, not supported if its upper bound is at or "
                f"below 50%, inconclusive otherwise; too little data (no verdict) when fewer than {MIN_RATERS} "
                f"raters or {MIN_SKETCHES} sketches are behind the share. With several generation conditions each "
                f"also gets a verdict of its own, with no correction for testing several")


def pct(share, digits=1):
    return "n/a" if share is None or math.isnan(share) else f"{share * 100:.{digits}f}%"


def describe(estimate_):
    return (f"{pct(estimate_['share'])} (95% CI {pct(estimate_['ci_low'])} to {pct(estimate_['ci_high'])}) "
            f"of {estimate_['ratings']} ratings")


def estimate(share, low, high, ratings, raters=0, sketches=0):
    return {"share": share, "ci_low": low, "ci_high": high, "ratings": ratings, "raters": raters,
            "sketches": sketches}


def claim(source, estimate_, grades_text, claim_text):
    result = verdict(estimate_["ci_low"], estimate_["ci_high"])
    reason = VERDICT_REASONS[result]
    if result != "no data" and (estimate_["raters"] < MIN_RATERS or estimate_["sketches"] < MIN_SKETCHES):
        result = "too little data"
        raters, sketches = estimate_["raters"], estimate_["sketches"]
        reason = (f"{VERDICT_REASONS[result]}; here {raters} rater{'s' * (raters != 1)}, "
                  f"{sketches} sketch{'es' * (sketches != 1)}")
    sentence = f"{source}: {describe(estimate_)} graded {grades_text}. {claim_text}: {result} ({reason})."
    return {"claim": claim_text, "verdict": result, "sentence": sentence, **estimate_}


def headline(summary, resampled):
    """The study's two claims with their verdicts, the shares behind them, and the
    discrimination error rate (ERROR_RATE_METHOD), all with bootstrap CIs."""
    def source_row(source):
        found = np.flatnonzero((summary["level"] == "source") & (summary["source"] == source))
        return found[0] if len(found) else None

    def figure(row, share):
        if row is None:
            return estimate(math.nan, math.nan, math.nan, 0)
        values = summary.iloc[row]
        return estimate(values[f"share_{share}"], values[f"{share}_ci_low"], values[f"{share}_ci_high"],
                        int(values["ratings"]), int(values["raters"]), int(values["items"]))

    real, generated = source_row(Stimulus.Source.REAL), source_row(Stimulus.Source.GENERATED)
    generated_real, real_passed = figure(generated, "real"), figure(real, "real_or_possibly")
    conditions = np.flatnonzero(summary["level"] == "condition")
    return {
        "generated": claim("Generated sketches", figure(generated, "real_or_possibly"), "real or possibly real",
                           "More than half graded real or possibly real"),
        "real": claim("Real sketches", figure(real, "real"), "real", "Mostly (more than half) graded real"),
        "generated_real": generated_real,
        "real_real_or_possibly": real_passed,
        "context": (f"Also: generated sketches graded real: {describe(generated_real)}; "
                    f"real sketches graded real or possibly real: {describe(real_passed)}."),
        "discrimination_error": discrimination_error(summary, resampled, real, generated),
        # With several generation conditions, the generated claim for each of them too.
        "by_condition": [claim(f"Generated sketches, {summary['condition'].iloc[row]}", figure(row, "real_or_possibly"),
                               "real or possibly real", "More than half graded real or possibly real")
                         for row in conditions] if len(conditions) > 1 else [],
    }


def by_sketch(items):
    """The claims counted by sketch instead of by rating: how many sketches most of their raters
    graded real or possibly real (generated) or real (real)."""
    parts = []
    for source, share, grades_text in ((Stimulus.Source.GENERATED, "share_real_or_possibly", "real or possibly real"),
                                       (Stimulus.Source.REAL, "share_real", "real")):
        of_source = items[items["source"] == source]
        if len(of_source):
            passed = int((of_source[share] > THRESHOLD).sum())
            parts.append(f"{passed} of {len(of_source)} {source} sketches ({pct(passed / len(of_source))}) were "
                         f"graded {grades_text} by more than half of their raters")
    return "By sketch: " + "; ".join(parts) + "." if parts else ""


def discrimination_error(summary, resampled, real, generated):
    """ERROR_RATE_METHOD, from the summary's two source rows and their resampled shares."""
    if real is None or generated is None:
        error = dict.fromkeys(["share", "ci_low", "ci_high", "real_graded_fake", "generated_graded_real_or_possibly"],
                              math.nan)
    else:
        real_fake = 1 - summary["share_real_or_possibly"].iloc[real]
        generated_passed = summary["share_real_or_possibly"].iloc[generated]
        share = (real_fake + generated_passed) / 2
        low, high = percentile_interval((1 - resampled[:, real, 0] + resampled[:, generated, 0]) / 2)
        # The floor as for the shares: the mean of two shares of n1 and n2 independent ratings has
        # the variance of one share of 4 / (1 / n1 + 1 / n2).
        floor_low, floor_high = wilson_interval(share, 4 / (1 / summary["ratings"].iloc[real]
                                                            + 1 / summary["ratings"].iloc[generated]))
        error = {"share": share, "ci_low": min(low, floor_low), "ci_high": max(high, floor_high),
                 "real_graded_fake": real_fake, "generated_graded_real_or_possibly": generated_passed}
    error["sentence"] = (
        f"Discrimination error rate: {pct(error['share'])} (95% CI {pct(error['ci_low'])} to "
        f"{pct(error['ci_high'])}), the mean of real sketches graded fake ({pct(error['real_graded_fake'])}) "
        f"and generated sketches graded real or possibly real ({pct(error['generated_graded_real_or_possibly'])}); "
        f"50% means raters could not tell them apart.")
    return error


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

    table = pd.crosstab(ratings["stimulus"], ratings["grade"]).reindex(columns=GRADES, fill_value=0)
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


# --- Everything together --------------------------------------------------------------------

def exclusion_table(participants, frame):
    """Excluded participants and their (non-attention) ratings, by reason and in total."""
    reasons = exclusion_reasons(participants, frame)
    metric = frame[~frame["attention_check"]]
    rows = []
    for reason in (UNFINISHED, FAILED_ATTENTION, None):
        tokens = [token for token, found in reasons.items() if reason is None or reason in found.split("; ")]
        rows.append({"reason": reason or "any reason", "participants": len(tokens),
                     "ratings": int(metric["participant"].isin(tokens).sum())})
    return pd.DataFrame(rows)


@dataclass
class StudyResults:
    study: object
    include_excluded: bool
    bootstrap: int
    seed: int
    stimuli: pd.DataFrame  # stimulus_counts
    participants: dict  # started, finished, counted, attention-check ratings
    exclusions: pd.DataFrame  # exclusion_table
    ratings: pd.DataFrame  # every rating (ratings_frame), for the tidy export
    counted: pd.DataFrame  # the ratings the metric counts (counted_ratings)
    summary: pd.DataFrame  # summary_table, empty without ratings
    headline: dict | None  # None without ratings
    items: pd.DataFrame  # item_scores
    agreement: dict | None

    @property
    def has_ratings(self):
        return not self.counted.empty

    @property
    def no_ratings_sentence(self):
        """Why there is no headline: nobody has rated yet, or every rater is excluded."""
        rated = self.ratings[~self.ratings["attention_check"]] if not self.ratings.empty else self.ratings
        if rated.empty:
            return "No ratings yet."
        return (f"No counted ratings: the {len(rated)} ratings there are all come from excluded participants "
                f"(see the exclusions); counting excluded participants too shows them.")

    @property
    def simulated_warning(self):
        """A warning when simulated participants (a dry run) are counted, else ""."""
        n = self.participants["simulated"]
        if not n:
            return ""
        return (f"{n} of the {self.participants['counted']} counted participants are simulated (a dry run; their "
                f"PROLIFIC_PID starts with {Participant.SIMULATED_PID_PREFIX}): these results are not a study's. "
                f"Remove them with: python manage.py simulate_participants --study {self.study.slug} --delete "
                f"(before recruiting).")

    @property
    def method(self):
        return {
            "bootstrap": BOOTSTRAP_METHOD,
            "resamples": self.bootstrap,
            "seed": self.seed,
            "threshold": THRESHOLD,
            "verdict": VERDICT_RULE,
            "shares": "shares of ratings (each rating counts once), not of sketches",
            "discrimination_error": ERROR_RATE_METHOD,
            "item_score": f"mean grade with {SCORE_MAPPING}",
            "exclusions": f"{UNFINISHED_RULE}; {ATTENTION_RULE}. Attention-check ratings are never counted. "
                          + ("Excluded participants are included here (on request)." if self.include_excluded
                             else "Excluded participants are left out."),
            "agreement": "Krippendorff's alpha (ordinal, scores as item_score) over the rater x item matrix; "
                         "Fleiss' kappa (nominal) over the items with the most common number of ratings",
        }

    def as_dict(self):
        """Everything, JSON-ready (NaN -> None)."""
        return _json_ready({
            "study": self.study.slug,
            "title": self.study.title,
            "include_excluded": self.include_excluded,
            "simulated_warning": self.simulated_warning,
            "method": self.method,
            "stimuli": records(self.stimuli),
            "participants": self.participants,
            "exclusions": records(self.exclusions),
            "headline": self.headline,
            "summary": records(self.summary),
            "items": records(self.items),
            "agreement": self.agreement,
        })


def study_results(study, include_excluded=False, bootstrap=DEFAULT_BOOTSTRAP, seed=DEFAULT_SEED):
    participants = participants_frame(study)
    frame = ratings_frame(study, participants)
    counted = counted_ratings(frame, include_excluded)
    reasons = exclusion_reasons(participants, frame)
    summary, resampled = summary_table(counted, bootstrap, seed)
    headline_ = agreement = None
    items = item_scores(counted)
    if not counted.empty:
        headline_ = {**headline(summary, resampled), "by_sketch": by_sketch(items)}
        alpha, kappa = krippendorff_alpha(counted), fleiss_kappa(counted)
        agreement = {"krippendorff": {**alpha, "sentence": describe_alpha(alpha)},
                     "fleiss": {**kappa, "sentence": describe_kappa(kappa)}}
    return StudyResults(
        study=study, include_excluded=include_excluded, bootstrap=bootstrap, seed=seed,
        stimuli=stimulus_counts(study),
        participants={
            "started": len(participants),
            "finished": int(participants["finished"].sum()),
            "excluded": len(reasons),
            "counted": int(counted["participant"].nunique()),
            "simulated": int(counted.loc[counted["simulated"], "participant"].nunique()),
            "counted_ratings": len(counted),
            "attention_check_ratings": int(frame["attention_check"].sum()),
        },
        exclusions=exclusion_table(participants, frame),
        ratings=frame, counted=counted, summary=summary, headline=headline_, items=items,
        agreement=agreement,
    )


# --- Exports --------------------------------------------------------------------------------

TIDY_COLUMNS = ["participant", "prolific_pid", "external_study_id", "external_session_id", "simulated", "stimulus",
                "category", "source", "condition", "checkpoint", "checkpoint_sha256", "temperature", "mode",
                "reject_degenerate", "grade", "score", "response_ms", "position", "created", "attention_check",
                "exclusion"]


def tidy_ratings(frame):
    """ratings_frame as the tidy export: one row per rating, attention checks and excluded
    participants included (flagged by `attention_check` and `exclusion`), so the file is the
    whole raw record and the report's numbers are its rows with neither flag."""
    tidy = frame[TIDY_COLUMNS].copy()
    tidy["created"] = [timestamp.isoformat() for timestamp in tidy["created"]]
    return tidy


PARTICIPANT_COLUMNS = ["participant", "prolific_pid", "external_study_id", "external_session_id", "simulated",
                       "consented", "started", "finished", "items", "rated", "attention_checks",
                       "attention_checks_failed", "median_response_ms", "exclusion"]


def participants_table(study):
    """One row per participant, those who never rated included: their ids, when they consented,
    started and finished, how many of their items (attention checks included) they rated, how
    many attention checks they got and failed, and their exclusion. The file to approve or
    reject submissions by on a recruitment site."""
    participants = pd.DataFrame(list(
        Participant.objects.filter(study=study).order_by("started", "pk")
        .values_list("token", "prolific_pid", "external_study_id", "external_session_id", "consented", "started",
                     "finished")), columns=["participant", "prolific_pid", "external_study_id", "external_session_id",
                                            "consented", "started", "finished"])
    # The exclusion rules want `finished` as a flag; one participants query serves both.
    flagged = participants.assign(finished=participants["finished"].notna())
    ratings = ratings_frame(study, flagged)
    items = dict(Assignment.objects.filter(participant__study=study).values_list("participant__token")
                 .annotate(n=Count("pk")).order_by())
    checks = ratings[ratings["attention_check"]]
    by_participant = ratings.groupby("participant")
    reasons = exclusion_reasons(flagged, ratings)
    tokens = participants["participant"]
    table = participants.assign(
        simulated=is_simulated(participants["prolific_pid"]),
        items=tokens.map(items).fillna(0).astype(int),
        rated=tokens.map(by_participant.size()).fillna(0).astype(int),
        attention_checks=tokens.map(checks.groupby("participant").size()).fillna(0).astype(int),
        attention_checks_failed=tokens.map(checks[checks["grade"] != ATTENTION_EXPECTED_GRADE]
                                           .groupby("participant").size()).fillna(0).astype(int),
        median_response_ms=tokens.map(by_participant["response_ms"].median()).astype("Float64"),
        exclusion=tokens.map(reasons).fillna(""),
    )
    for column in ("consented", "started", "finished"):
        table[column] = [timestamp.isoformat() if pd.notna(timestamp) else "" for timestamp in table[column]]
    return table[PARTICIPANT_COLUMNS]


def display_summary(summary):
    """The summary table as text for people: shares in percent, intervals as low-high."""
    def interval(low, high):
        return f"{pct(low)}-{pct(high)}" if pd.notna(low) else "n/a"

    return pd.DataFrame({
        "level": summary["level"], "source": summary["source"], "category": summary["category"],
        "condition": summary["condition"], "ratings": summary["ratings"], "raters": summary["raters"],
        "items": summary["items"],
        **{GRADE_LABELS[grade].lower(): summary[f"share_{grade}"].map(pct) for grade in GRADES},
        "real or possibly": summary["share_real_or_possibly"].map(pct),
        "95% CI (real or possibly)": [interval(*b) for b in zip(summary["real_or_possibly_ci_low"], summary["real_or_possibly_ci_high"])],
        "95% CI (real)": [interval(*b) for b in zip(summary["real_ci_low"], summary["real_ci_high"])],
    })


def csv_text(frame):
    return frame.to_csv(index=False, lineterminator="\n")


def records(frame):
    return [{key: _native(value) for key, value in row.items()} for row in frame.to_dict("records")]


def _native(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA:
        return None
    return value


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return _native(value)


def to_json(results):
    return json.dumps(results.as_dict(), indent=2, allow_nan=False)
