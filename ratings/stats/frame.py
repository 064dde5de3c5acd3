"""A study's ratings as a tidy pandas DataFrame, one row per rating, read from the database in one
query, with each participant's exclusion (unfinished, failed attention check, duplicate recruitment
id) and each browser-measured time that cannot be right flagged beside them."""

import pandas as pd

from ratings.attention import EXPECTED_GRADE
from ratings.models import Participant, Rating, Stimulus

# How per-sketch means and ordinal agreement count the grades: "real = 2, possibly real = 1, fake = 0".
SCORE_MAPPING = ", ".join(f"{grade.label.lower()} = {grade.score}" for grade in Rating.Grade)
REAL_OR_POSSIBLY = [Rating.Grade.REAL, Rating.Grade.POSSIBLY_REAL]  # the grades that pass a sketch as a person's
UNFINISHED = "unfinished"
FAILED_ATTENTION = "failed attention check"
DUPLICATE_ID = "duplicate recruitment id"
ATTENTION_RULE = ("a participant fails the attention checks if they graded any attention-check sketch other than "
                  f"{EXPECTED_GRADE.label}")
UNFINISHED_RULE = "a participant is unfinished if they never reached the end of the study"
DUPLICATE_ID_RULE = ("a participant has a duplicate recruitment id if someone else consented under that id before "
                     "them, from another browser")
IMPLAUSIBLE_RULE = (f"a browser's response time is implausible if it is under {Rating.BUTTONS_OPEN_MS} ms (the buttons "
                    f"open only then) or longer than the server's time from serving the page to the answer "
                    f"(plus {Rating.CLOCK_SLACK_MS} ms for clocks that round)")


def fails_attention(attention_grades):
    """The attention-check rule (ATTENTION_RULE), given one participant's attention-check grades."""
    return bool((pd.Series(attention_grades) != EXPECTED_GRADE).any())


def condition_labels(study):
    """{condition id: Condition.label} of the study's generation conditions."""
    return {condition.pk: condition.label() for condition in study.conditions.all()}


RATING_FIELDS = {
    "participant": "participant__token",
    "prolific_pid": "participant__prolific_pid",
    "external_study_id": "participant__external_study_id",
    "external_session_id": "participant__external_session_id",
    "finished": "participant__finished",
    "attempt": "participant__attempt",
    "stimulus": "stimulus__public_id",
    "category": "stimulus__category",
    "source": "stimulus__source",
    "condition_id": "stimulus__condition_id",
    "checkpoint": "stimulus__condition__checkpoint_name",
    "checkpoint_sha256": "stimulus__condition__checkpoint_sha256",
    "temperature": "stimulus__condition__temperature",
    "temperature_rule": "stimulus__condition__temperature_rule",
    "mode": "stimulus__condition__mode",
    "reject_degenerate": "stimulus__condition__reject_degenerate",
    "grade": "grade",
    "response_ms": "response_ms",
    "server_ms": "server_ms",
    "position": "position",
    "created": "created",
}


def participants_frame(study):
    rows = Participant.objects.filter(study=study).values_list("token", "finished", "attempt")
    frame = pd.DataFrame(list(rows), columns=["participant", "finished", "attempt"])
    frame["finished"] = frame["finished"].notna()
    return frame


def implausible_response_ms(response_ms, server_ms):
    """IMPLAUSIBLE_RULE for each rating: True, False, or missing without a browser time."""
    too_long = (response_ms > server_ms + Rating.CLOCK_SLACK_MS).fillna(False)
    return ((response_ms < Rating.BUTTONS_OPEN_MS) | too_long).astype("boolean")


def is_simulated(prolific_pids):
    return prolific_pids.str.startswith(Participant.SIMULATED_PID_PREFIX).astype(bool)


def ratings_frame(study, participants=None):
    """Every rating of the study, one row each, with its participant's exclusion ("" if none).

    Columns: those of RATING_FIELDS (with `finished` a boolean), plus `simulated` (a dry run's
    participant, see simulate_participants), `response_ms_implausible` (IMPLAUSIBLE_RULE), `condition` (a label,
    "" for real sketches and attention checks), `score` (SCORE_MAPPING), `attention_check` and
    `exclusion` (the reasons, joined by "; ").
    """
    rows = (Rating.objects.filter(participant__study=study)
            .order_by("participant__consented", "participant_id", "position")
            .values_list(*RATING_FIELDS.values()))
    frame = pd.DataFrame(list(rows), columns=list(RATING_FIELDS))
    frame["finished"] = frame["finished"].notna()
    frame["simulated"] = is_simulated(frame["prolific_pid"])
    frame["temperature"] = frame["temperature"].astype(float)
    frame["response_ms"] = frame["response_ms"].astype("Int64")  # may be missing (no JavaScript)
    frame["server_ms"] = frame["server_ms"].astype("Int64")  # missing for pages served without their timestamp
    frame["response_ms_implausible"] = implausible_response_ms(frame["response_ms"], frame["server_ms"])
    frame["condition_id"] = frame["condition_id"].astype("Int64")
    labels = condition_labels(study)
    frame["condition"] = [labels[condition] if pd.notna(condition) else "" for condition in frame["condition_id"]]
    for column in ("checkpoint", "checkpoint_sha256", "temperature_rule", "mode"):
        frame[column] = frame[column].fillna("")
    frame["score"] = frame["grade"].map({grade.value: grade.score for grade in Rating.Grade}).astype(int)
    frame["attention_check"] = frame["source"] == Stimulus.Source.ATTENTION
    reasons = exclusion_reasons(participants if participants is not None else participants_frame(study), frame)
    frame["exclusion"] = [reasons.get(token, "") for token in frame["participant"]]
    return frame


def exclusion_reasons(participants, ratings):
    """{participant token: "; "-joined reasons} for every participant with at least one reason."""
    failed = (ratings[ratings["attention_check"]].groupby("participant")["grade"].agg(fails_attention))
    failed_tokens = set(failed[failed].index)
    reasons = {}
    for token, finished, attempt in zip(participants["participant"], participants["finished"], participants["attempt"]):
        found = (([] if finished else [UNFINISHED]) + ([FAILED_ATTENTION] if token in failed_tokens else [])
                 + ([DUPLICATE_ID] if attempt > 1 else []))
        if found:
            reasons[token] = "; ".join(found)
    return reasons


def exclusion_table(participants, frame):
    """Excluded participants and their (non-attention) ratings, by reason and in total."""
    reasons = exclusion_reasons(participants, frame)
    metric = frame[~frame["attention_check"]]
    rows = []
    for reason in (UNFINISHED, FAILED_ATTENTION, DUPLICATE_ID, None):
        tokens = [token for token, found in reasons.items() if reason is None or reason in found.split("; ")]
        rows.append({"reason": reason or "any reason", "participants": len(tokens),
                     "ratings": int(metric["participant"].isin(tokens).sum())})
    return pd.DataFrame(rows)


def counted_ratings(frame, include_excluded=False):
    """The ratings the metric counts: never attention checks; excluded participants only if asked."""
    keep = ~frame["attention_check"]
    if not include_excluded:
        keep &= frame["exclusion"] == ""
    return frame[keep].reset_index(drop=True)


def stimulus_counts(study):
    """Stimuli by source, category and condition (attention checks by kind)."""
    labels = condition_labels(study)
    counts = {}
    for source, category, dataset_file, condition in (Stimulus.objects.filter(study=study)
                                                      .values_list("source", "category", "dataset_file", "condition")):
        if source == Stimulus.Source.ATTENTION:
            category = f"({dataset_file or 'check'})"
        label = labels[condition] if condition is not None else ""
        counts[(source, category, label)] = counts.get((source, category, label), 0) + 1
    frame = pd.DataFrame([(*key, n) for key, n in counts.items()],
                         columns=["source", "category", "condition", "stimuli"])
    frame["source"] = pd.Categorical(frame["source"], categories=Stimulus.Source.values, ordered=True)
    return frame.sort_values(["source", "condition", "category"]).reset_index(drop=True)
