"""The headline: the study's two claims with their verdicts, counted by rating and by sketch, and
the discrimination error rate, all read off the summary table and its resamples."""

import math

import numpy as np

from ratings.models import Stimulus

from .bootstrap import percentile_interval, wilson_interval


THRESHOLD = 0.5
# A claim's verdict needs this many raters and sketches behind its share: with fewer, resampling
# them cannot show how much people and sketches differ (one rater gives a zero-width interval).
MIN_RATERS = 10
MIN_SKETCHES = 10
ERROR_RATE_METHOD = (
    "Discrimination error rate (HYPE-style): a rater is taken to say 'real' when they grade a "
    "sketch real or possibly real, and 'fake' otherwise. The error rate is the mean of two "
    "per-source rates, real sketches graded fake and generated sketches graded real or possibly "
    "real, so an unbalanced number of real and generated ratings does not bias it. 50% means "
    "raters could not tell generated from real sketches; 0% means they always could."
)


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
