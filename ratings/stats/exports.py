"""The results as files and text: the tidy ratings CSV, the participants CSV, the summary table for
people, and JSON."""

import json
import math

import numpy as np
import pandas as pd
from django.db.models import Count

from ratings.attention import EXPECTED_GRADE
from ratings.models import Assignment, Participant, Rating

from .frame import exclusion_reasons, is_simulated, ratings_frame
from .headline import pct


TIDY_COLUMNS = ["participant", "prolific_pid", "external_study_id", "external_session_id", "simulated", "stimulus",
                "category", "source", "condition", "checkpoint", "checkpoint_sha256", "temperature", "temperature_rule",
                "mode", "reject_degenerate", "grade", "score", "response_ms", "server_ms", "response_ms_implausible",
                "position", "created", "attention_check", "exclusion"]


def tidy_ratings(frame):
    """ratings_frame as the tidy export: one row per rating, attention checks and excluded
    participants included (flagged by `attention_check` and `exclusion`), so the file is the
    whole raw record and the report's numbers are its rows with neither flag."""
    tidy = frame[TIDY_COLUMNS].copy()
    tidy["created"] = [timestamp.isoformat() for timestamp in tidy["created"]]
    return tidy


PARTICIPANT_COLUMNS = ["participant", "prolific_pid", "attempt", "external_study_id", "external_session_id",
                       "simulated", "consented", "started", "finished", "items", "rated", "attention_checks",
                       "attention_checks_failed", "median_response_ms", "implausible_response_times", "exclusion"]


def participants_table(study):
    """One row per participant, those who never rated included: their ids, when they consented,
    started and finished, how many of their items (attention checks included) they rated, how
    many attention checks they got and failed, how many of their browser's response times are
    implausible, and their exclusion. The file to approve or reject submissions by on a
    recruitment site (`attempt` above 1: a duplicate recruitment id)."""
    fields = ["participant", "prolific_pid", "attempt", "external_study_id", "external_session_id", "consented",
              "started", "finished"]
    participants = pd.DataFrame(list(
        Participant.objects.filter(study=study).order_by("consented", "pk")
        .values_list("token", *fields[1:])), columns=fields)
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
        attention_checks_failed=tokens.map(checks[checks["grade"] != EXPECTED_GRADE]
                                           .groupby("participant").size()).fillna(0).astype(int),
        median_response_ms=tokens.map(by_participant["response_ms"].median()).astype("Float64"),
        implausible_response_times=tokens.map(by_participant["response_ms_implausible"].sum()).fillna(0).astype(int),
        exclusion=[reasons.get(token, "") for token in tokens],
    )
    for column in ("consented", "started", "finished"):
        table[column] = [timestamp.isoformat() if pd.notna(timestamp) else "" for timestamp in table[column]]
    return table[PARTICIPANT_COLUMNS]


def summary_tables(summary):
    """The summary table for people, as [(title, table)]: by source, by category (real and generated
    side by side), and with several generation conditions by condition and by condition and category;
    shares in percent, each interval beside its share, and no column or row that repeats another (the
    CSV keeps every row)."""
    def share_and_interval(share, low, high):
        return f"{pct(share)} ({pct(low)[:-1]}-{pct(high)})" if pd.notna(low) else pct(share)

    def shown(rows, first_columns):
        return pd.DataFrame({
            **{column: rows[column] for column in first_columns},
            "ratings": rows["ratings"], "raters": rows["raters"], "items": rows["items"],
            **{grade.label.lower(): rows[f"share_{grade.value}"].map(pct) for grade in Rating.Grade},
            "real or possibly (95% CI)": [share_and_interval(*values) for values in zip(
                rows["share_real_or_possibly"], rows["real_or_possibly_ci_low"], rows["real_or_possibly_ci_high"])],
            "real (95% CI)": [share_and_interval(*values) for values in zip(
                rows["share_real"], rows["real_ci_low"], rows["real_ci_high"])],
        }).reset_index(drop=True)

    level = summary["level"]
    sources = summary[level == "source"]
    by_category = summary[level == "source x category"].sort_values(["category", "source"], ascending=[True, False])
    tables = [("By source", shown(sources, ["source"] + (["category"] if (sources["category"] != "all").any() else []))),
              ("By category", shown(by_category, ["category", "source"]))]
    conditions = summary[level == "condition"]
    if len(conditions) > 1:
        tables.append(("Generated, by condition", shown(conditions, ["condition"])))
        # A condition of one category has one row of it, the same as its condition's.
        per_condition = summary[level == "condition x category"]
        several = per_condition.groupby("condition")["category"].transform("size") > 1
        if several.any():
            tables.append(("Generated, by condition and category",
                           shown(per_condition[several], ["condition", "category"])))
    return tables


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


def json_ready(value):
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return _native(value)


def to_json(results, progress=None):
    """The results (and the study's progress, if given) as one JSON object."""
    data = results.as_dict()
    if progress is not None:
        data["progress"] = json_ready(progress.as_dict())
    return json.dumps(data, indent=2, allow_nan=False)
