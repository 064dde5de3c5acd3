"""StudyResults: the one object the results page, `study_report` and `export_ratings` read, so the
three agree by construction. `study_results` computes it from a study's ratings: stimulus counts,
exclusions, the summary table, the headline with its verdicts, per-sketch scores and agreement."""

from dataclasses import dataclass

import pandas as pd

from ratings.models import Participant

from .agreement import describe_alpha, describe_kappa, fleiss_kappa, krippendorff_alpha
from .bootstrap import BOOTSTRAP_METHOD, DEFAULT_BOOTSTRAP, DEFAULT_SEED
from .exports import json_ready, records
from .frame import (ATTENTION_RULE, DUPLICATE_ID_RULE, SCORE_MAPPING, UNFINISHED_RULE, counted_ratings,
                    exclusion_reasons, exclusion_table, participants_frame, ratings_frame, stimulus_counts)
from .headline import ERROR_RATE_METHOD, THRESHOLD, VERDICT_RULE, by_sketch, headline
from .summary import item_scores, summary_table


@dataclass
class StudyResults:
    study: object
    include_excluded: bool
    bootstrap: int
    seed: int
    stimuli: pd.DataFrame  # stimulus_counts
    participants: dict  # consented, finished, excluded, counted, attention-check ratings
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
            "exclusions": f"{UNFINISHED_RULE}; {ATTENTION_RULE}; {DUPLICATE_ID_RULE}. Attention-check ratings are "
                          "never counted. "
                          + ("Excluded participants are included here (on request)." if self.include_excluded
                             else "Excluded participants are left out."),
            "agreement": "Krippendorff's alpha (ordinal, scores as item_score) over the rater x item matrix; "
                         "Fleiss' kappa (nominal) over the items with the most common number of ratings",
        }

    def as_dict(self):
        """Everything, JSON-ready (NaN -> None)."""
        return json_ready({
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
            "consented": len(participants),
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
