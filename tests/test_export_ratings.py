"""export_ratings: the ratings, summary and participants files, read back against the report's numbers."""

import json
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from ratings.models import Participant, Rating
from ratings.stats.frame import DUPLICATE_ID, FAILED_ATTENTION, UNFINISHED
from tests.participant_steps import consent, url
from tests.results_data import PARTICIPANTS_CSV_COLUMNS, RATINGS_CSV_COLUMNS, SUMMARY_CSV_COLUMNS


def export(*args):
    out = StringIO()
    call_command("export_ratings", *args, stdout=out)
    return out.getvalue()


def report_json(*args):
    out = StringIO()
    call_command("study_report", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def blanks(frame):
    return frame.astype(object).where(frame.notna(), "")


def test_ratings_file_has_one_row_per_rating(rated_study, tmp_path):
    out = tmp_path / "ratings.csv"
    assert export("--study", "rated", "--out", str(out)) == f"Wrote 52 ratings of study rated to {out}\n"
    ratings = pd.read_csv(out)
    assert list(ratings.columns) == RATINGS_CSV_COLUMNS
    assert len(ratings) == 5 * 10 + 2
    assert ratings["attention_check"].sum() == 10
    tokens = dict(Participant.objects.filter(study=rated_study).values_list("prolific_pid", "token"))
    first = ratings.iloc[0]
    assert (first["participant"], first["prolific_pid"], first["position"], first["response_ms"]) == (
        tokens["pid-A"], "pid-A", 0, 1000)
    generated = ratings[ratings["source"] == "generated"].iloc[0]
    assert generated["temperature"] == 0.5 and generated["mode"] == "unconditional"
    assert pd.Timestamp(first["created"]).tzinfo is not None
    by_participant = ratings.groupby("prolific_pid")["exclusion"].first()
    assert by_participant.isna().sum() == 4
    assert (by_participant["pid-E"], by_participant["pid-F"]) == (UNFINISHED, FAILED_ATTENTION)


def test_ratings_file_reads_back_to_the_reports_numbers(rated_study, tmp_path):
    out = tmp_path / "ratings.csv"
    export("--study", "rated", "--out", str(out))
    ratings = pd.read_csv(out)
    counted = ratings[~ratings["attention_check"] & ratings["exclusion"].isna()]
    summary = pd.DataFrame(report_json("--study", "rated", "--bootstrap", "50")["summary"])
    groups = [((source, "all"), group) for source, group in counted.groupby("source")]
    groups += list(counted.groupby(["source", "category"]))
    assert len(groups) == 6
    for (source, category), group in groups:
        row = summary[summary["level"].isin(["source", "source x category"]) & (summary["source"] == source)
                      & (summary["category"] == category)]
        assert len(row) == 1
        row = row.iloc[0]
        assert (row["ratings"], row["raters"], row["items"]) == (
            len(group), group["participant"].nunique(), group["stimulus"].nunique())
        for grade in Rating.Grade.values:
            assert row[f"share_{grade}"] == pytest.approx((group["grade"] == grade).mean())


def test_summary_file_is_the_reports_table(rated_study, tmp_path):
    out = tmp_path / "summary.csv"
    assert export("--study", "rated", "--out", str(out), "--summary", "--bootstrap", "100", "--seed", "5") == \
        f"Wrote 9 summary rows of study rated to {out}\n"
    written = pd.read_csv(out)
    assert list(written.columns) == SUMMARY_CSV_COLUMNS
    reported = pd.DataFrame(report_json("--study", "rated", "--bootstrap", "100", "--seed", "5")["summary"])
    # Empty strings read back as missing; the numbers are the same to the last digit.
    pd.testing.assert_frame_equal(blanks(written), blanks(reported), check_dtype=False)
    generated = written[(written["level"] == "source") & (written["source"] == "generated")].iloc[0]
    assert generated["share_real_or_possibly"] == pytest.approx(9 / 16)
    assert generated["real_or_possibly_ci_low"] <= 9 / 16 <= generated["real_or_possibly_ci_high"]


def test_summary_can_include_excluded_participants(rated_study, tmp_path):
    out = tmp_path / "summary.csv"
    export("--study", "rated", "--out", str(out), "--summary", "--bootstrap", "50", "--include-excluded")
    written = pd.read_csv(out)
    generated = written[(written["level"] == "source") & (written["source"] == "generated")].iloc[0]
    assert (generated["ratings"], generated["share_real_or_possibly"]) == (21, pytest.approx(14 / 21))


def test_participants_file_has_one_row_per_participant(rated_study, tmp_path):
    waiting = Participant.objects.create(study=rated_study, prolific_pid="pid-G", consented=timezone.now())
    waiting.assign()  # consented and got their items, rated none yet
    out = tmp_path / "p.csv"
    assert export("--study", "rated", "--out", str(out), "--participants") == \
        f"Wrote 7 participants of study rated to {out}\n"
    table = pd.read_csv(out, keep_default_na=False).set_index("prolific_pid")
    assert list(table.reset_index().columns[[1, 0]]) == PARTICIPANTS_CSV_COLUMNS[:2]
    assert list(table.index) == ["pid-A", "pid-B", "pid-C", "pid-D", "pid-F", "pid-E", "pid-G"]  # as they consented
    columns = ["rated", "attention_checks", "attention_checks_failed", "exclusion"]
    assert table.loc["pid-A", columns].tolist() == [10, 2, 0, ""]
    assert table.loc["pid-A", "median_response_ms"] == "1004.5"  # of 1000..1009
    assert table.loc["pid-F", columns].tolist() == [10, 2, 1, FAILED_ATTENTION]
    assert table.loc["pid-E", columns].tolist() == [2, 0, 0, UNFINISHED]
    assert table.loc["pid-E", "finished"] == "" and pd.Timestamp(table.loc["pid-A", "finished"]).tzinfo is not None
    assert table.loc["pid-G", columns].tolist() == [0, 0, 0, UNFINISHED]
    assert table.loc["pid-G", "items"] == waiting.assignments.count() > 0
    assert table.loc["pid-G", "median_response_ms"] == "" and not table["simulated"].any()


def test_started_is_when_a_participant_pressed_start_and_consent_has_its_own_column(make_study, tmp_path):
    study = make_study(slug="times", items_per_participant=2, attention=0)
    consent(Client(), study, PROLIFIC_PID="only-consented")
    browser = Client()
    consent(browser, study, PROLIFIC_PID="pressed-start")
    before_start = timezone.now()
    browser.post(url("instructions", study))  # Start
    out = tmp_path / "p.csv"
    export("--study", "times", "--out", str(out), "--participants")
    table = pd.read_csv(out, keep_default_na=False).set_index("prolific_pid")
    assert table.loc["only-consented", "started"] == "" and table.loc["only-consented", "consented"] != ""
    consented, started = (pd.Timestamp(table.loc["pressed-start", column]) for column in ("consented", "started"))
    assert consented <= before_start <= started <= timezone.now()


def test_a_study_without_ratings_gives_headers_only(make_study, tmp_path):
    make_study(slug="fresh")
    export("--study", "fresh", "--out", str(tmp_path / "r.csv"))
    export("--study", "fresh", "--out", str(tmp_path / "s.csv"), "--summary")
    export("--study", "fresh", "--out", str(tmp_path / "p.csv"), "--participants")
    assert list(pd.read_csv(tmp_path / "r.csv").columns) == RATINGS_CSV_COLUMNS
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == SUMMARY_CSV_COLUMNS
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == PARTICIPANTS_CSV_COLUMNS


def test_replaces_the_file_whole_and_leaves_nothing_aside(rated_study, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "ratings.csv"
    out.write_text("old")
    export("--study", "rated", "--out", str(out))
    assert out.read_text().startswith("participant,")
    assert [p.name for p in folder.iterdir()] == ["ratings.csv"]


def test_clear_errors(rated_study, tmp_path):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        export("--study", "nope", "--out", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="does not exist"):
        export("--study", "rated", "--out", str(tmp_path / "missing" / "x.csv"))
    with pytest.raises(CommandError, match="is a folder"):
        export("--study", "rated", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="applies to --summary"):
        export("--study", "rated", "--out", str(tmp_path / "x.csv"), "--include-excluded")
    with pytest.raises(CommandError, match="the following arguments are required: --out"):
        export("--study", "rated")
    with pytest.raises(CommandError, match="not allowed with argument --summary"):
        export("--study", "rated", "--out", str(tmp_path / "x.csv"), "--summary", "--participants")
    assert not (tmp_path / "x.csv").exists()


def test_ids_never_start_with_a_minus_which_spreadsheets_read_as_a_formula(monkeypatch):
    from ratings import models

    drawn = iter(["-Ab3", "-x", "Ab3"])
    monkeypatch.setattr(models.secrets, "token_urlsafe", lambda nbytes: next(drawn))
    assert models.new_public_id() == "Ab3"


def test_ratings_file_flags_browser_times_that_cannot_be_right(make_study, tmp_path):
    study = make_study(slug="timed", real=4, generated=4, attention=0)
    participant = Participant.objects.create(study=study, prolific_pid="pid-T", consented=timezone.now(),
                                             finished=timezone.now())
    # (browser, server) times: under the buttons' opening, longer than the server's interval, within
    # the slack for clocks that round, no browser time, no server time.
    times = {"fine": (1000, 2000), "too fast": (300, 2000), "longer than the server's": (2500, 2000),
             "rounded": (2050, 2000), "no javascript": (None, 2000), "no timestamp": (1000, None),
             "too fast, no timestamp": (200, None)}
    for position, (stimulus, (browser, server)) in enumerate(zip(study.stimuli.order_by("pk"), times.values()), 1):
        Rating.objects.create(participant=participant, stimulus=stimulus, grade="real", response_ms=browser,
                              server_ms=server, position=position)
    out = tmp_path / "ratings.csv"
    export("--study", "timed", "--out", str(out))
    flags = pd.read_csv(out, keep_default_na=False)["response_ms_implausible"].tolist()
    assert dict(zip(times, flags)) == {"fine": "False", "too fast": "True", "longer than the server's": "True",
                                       "rounded": "False", "no javascript": "", "no timestamp": "False",
                                       "too fast, no timestamp": "True"}
    export("--study", "timed", "--out", str(out), "--participants")
    assert pd.read_csv(out)["implausible_response_times"].tolist() == [3]


def test_a_later_attempt_under_a_recruitment_id_is_excluded_as_a_duplicate(rated_study, tmp_path):
    first = Participant.objects.get(study=rated_study, prolific_pid="pid-A")
    again = rated_study.enroll("another-browser", prolific_pid="pid-A")
    again.assign()
    for position in range(1, 3):
        again.rate(position, "real", 1500)
    out = tmp_path / "ratings.csv"
    export("--study", "rated", "--out", str(out))
    ratings = pd.read_csv(out, keep_default_na=False)
    exclusions = ratings.groupby("participant")["exclusion"].first()
    assert exclusions[first.token] == "" and DUPLICATE_ID in exclusions[again.token].split("; ")
    export("--study", "rated", "--out", str(out), "--participants")
    table = pd.read_csv(out, keep_default_na=False).set_index("participant")
    assert table.loc[first.token, ["prolific_pid", "attempt"]].tolist() == ["pid-A", 1]
    assert table.loc[again.token, ["prolific_pid", "attempt"]].tolist() == ["pid-A", 2]
    assert DUPLICATE_ID in table.loc[again.token, "exclusion"]
    report = report_json("--study", "rated", "--bootstrap", "20")
    counted_otherwise = again.ratings.exclude(stimulus__source="attention").count()  # checks never count
    assert {"reason": DUPLICATE_ID, "participants": 1, "ratings": counted_otherwise} in report["exclusions"]
