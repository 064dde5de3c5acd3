"""Ratings built by hand for the results tests: every figure is known in advance."""

import pandas as pd
from django.utils import timezone

from ratings.models import Participant, Rating, Stimulus

# The exported files' columns, in order: what a researcher's analysis scripts read.
RATINGS_CSV_COLUMNS = ["participant", "prolific_pid", "external_study_id", "external_session_id", "simulated",
                       "stimulus", "category", "source", "condition", "checkpoint", "checkpoint_sha256", "temperature",
                       "temperature_rule", "mode", "reject_degenerate", "grade", "score", "response_ms", "server_ms",
                       "response_ms_implausible", "position", "created", "attention_check", "exclusion"]
SUMMARY_CSV_COLUMNS = ["level", "source", "category", "condition", "checkpoint", "temperature", "mode", "ratings",
                       "raters", "items", "share_real", "share_possibly_real", "share_fake", "share_real_or_possibly",
                       "real_or_possibly_ci_low", "real_or_possibly_ci_high", "real_ci_low", "real_ci_high"]
PARTICIPANTS_CSV_COLUMNS = ["participant", "prolific_pid", "attempt", "external_study_id", "external_session_id",
                            "simulated", "consented", "started", "finished", "items", "rated", "attention_checks",
                            "attention_checks_failed", "median_response_ms", "implausible_response_times",
                            "exclusion"]
GRADE = {"R": "real", "P": "possibly_real", "F": "fake"}
SCORE = {"R": 2, "P": 1, "F": 0}  # how per-sketch means and ordinal agreement count them
# Columns of the grade strings below: real circle 0 and 1, real square 0 and 1, generated circle
# 0 and 1, generated square 0 and 1, then the study's two attention checks.
ORDER = ["r1", "r2", "r3", "r4", "g1", "g2", "g3", "g4", "check1", "check2"]
GRADES_BY_PARTICIPANT = {
    "A": "RRRP RPFP FF",
    "B": "RRFR PFFR FF",
    "C": "RPRR RPPF FF",
    "D": "RRRF FFPF FF",
    "F": "RRRR RRRR PF",  # failed the first attention check
}
UNFINISHED = {"E": {"r1": "F", "g1": "R"}}


def stimuli_by_name(study):
    names = {}
    checks = 0
    for stimulus in Stimulus.objects.filter(study=study).order_by("pk"):
        if stimulus.source == Stimulus.Source.ATTENTION:
            checks += 1
            names[f"check{checks}"] = stimulus
        else:
            index = stimulus.dataset_index if stimulus.source == Stimulus.Source.REAL else stimulus.sample_index
            offset = {"circle": 1, "square": 3}[stimulus.category] + index
            names[f"{stimulus.source[0]}{offset}"] = stimulus
    return names


def add_participant(study, name, grades, finished=True, stimuli=None):
    """grades: {stimulus name: R/P/F}, rated in that order."""
    stimuli = stimuli or stimuli_by_name(study)
    participant = Participant.objects.create(study=study, prolific_pid=f"pid-{name}", consented=timezone.now(),
                                             finished=timezone.now() if finished else None)
    for position, (stimulus, grade) in enumerate(grades.items()):
        Rating.objects.create(participant=participant, stimulus=stimuli[stimulus], grade=GRADE[grade],
                              response_ms=1000 + position, position=position)
    return participant


def build_rated_study(make_study):
    """4 finished, attentive participants who graded everything, one unfinished, one who failed."""
    study = make_study(slug="rated", categories=("circle", "square"), real=2, generated=2, attention=2,
                       completion_code="RATED")
    stimuli = stimuli_by_name(study)
    for name, grades in GRADES_BY_PARTICIPANT.items():
        add_participant(study, name, dict(zip(ORDER, grades.replace(" ", ""))), stimuli=stimuli)
    for name, grades in UNFINISHED.items():
        add_participant(study, name, grades, finished=False, stimuli=stimuli)
    return study


def frame_of(grades_by_rater):
    """A counted-ratings frame from {rater: {item: R/P/F}}."""
    rows = [{"participant": rater, "stimulus": item, "grade": GRADE[g], "score": SCORE[g]}
            for rater, items in grades_by_rater.items() for item, g in items.items()]
    return pd.DataFrame(rows)
