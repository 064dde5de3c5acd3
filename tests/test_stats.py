"""The study's results on ratings built by hand, where every figure is known in advance."""

import json
import math

import pytest
from django.utils import timezone

from ratings.attention import EXPECTED_GRADE
from ratings.models import DEFAULT_INSTRUCTIONS, Participant, Rating, Stimulus
from ratings.stats.bootstrap import Z, wilson_interval
from ratings.stats.exports import tidy_ratings, to_json
from ratings.stats.frame import ATTENTION_RULE, DUPLICATE_ID, FAILED_ATTENTION, UNFINISHED, ratings_frame
from ratings.stats.headline import verdict
from ratings.stats.results import study_results
from ratings.stats.summary import best_and_worst
from tests.results_data import SUMMARY_CSV_COLUMNS, add_participant, build_rated_study, stimuli_by_name


def row(summary, level, source, category="all"):
    found = summary[(summary["level"] == level) & (summary["source"] == source) & (summary["category"] == category)]
    assert len(found) == 1
    return found.iloc[0]


@pytest.mark.parametrize("low, high, expected", [
    (0.51, 0.9, "supported"), (0.5, 0.9, "inconclusive"), (0.2, 0.6, "inconclusive"),
    (0.2, 0.5, "not supported"), (0.1, 0.3, "not supported"), (math.nan, math.nan, "no data"),
])
def test_verdict_against_the_threshold(low, high, expected):
    assert verdict(low, high) == expected


def test_ratings_frame_flags_attention_checks_and_exclusions(rated_study):
    frame = ratings_frame(rated_study)
    assert len(frame) == 5 * 10 + 2
    assert frame["attention_check"].sum() == 10
    exclusion = frame.drop_duplicates("prolific_pid").set_index("prolific_pid")["exclusion"].to_dict()
    assert exclusion == {"pid-A": "", "pid-B": "", "pid-C": "", "pid-D": "", "pid-E": UNFINISHED,
                         "pid-F": FAILED_ATTENTION}
    generated = frame[frame["source"] == "generated"].iloc[0]
    assert generated["condition"] == f"test.pt ({'0' * 8}) t=0.5 unconditional"
    assert generated["temperature"] == 0.5


def test_the_attention_rule_asks_for_the_grade_the_instructions_give():
    assert EXPECTED_GRADE == Rating.Grade.FAKE
    assert "grade it Fake." in DEFAULT_INSTRUCTIONS
    assert ATTENTION_RULE.endswith("other than Fake")


def test_an_unfinished_participant_who_failed_an_attention_check_has_both_reasons(rated_study):
    add_participant(rated_study, "G", {"check2": "R", "r1": "R"}, finished=False)
    results = study_results(rated_study, bootstrap=50)
    assert results.ratings.set_index("prolific_pid").loc["pid-G", "exclusion"].iloc[0] == \
        f"{UNFINISHED}; {FAILED_ATTENTION}"
    assert results.exclusions.to_dict("records") == [
        {"reason": UNFINISHED, "participants": 2, "ratings": 3},
        {"reason": FAILED_ATTENTION, "participants": 2, "ratings": 9},
        {"reason": DUPLICATE_ID, "participants": 0, "ratings": 0},
        {"reason": "any reason", "participants": 3, "ratings": 11},
    ]


def test_summary_shares_by_source_and_category(rated_study):
    summary = study_results(rated_study, bootstrap=50).summary
    expected = {  # (ratings, raters, items, real, possibly real, fake) out of the ratings
        ("source", "real", "all"): (16, 4, 4, 12, 2, 2),
        ("source", "generated", "all"): (16, 4, 4, 3, 6, 7),
        ("source x category", "real", "circle"): (8, 4, 2, 7, 1, 0),
        ("source x category", "real", "square"): (8, 4, 2, 5, 1, 2),
        ("source x category", "generated", "circle"): (8, 4, 2, 2, 3, 3),
        ("source x category", "generated", "square"): (8, 4, 2, 1, 3, 4),
        ("condition", "generated", "all"): (16, 4, 4, 3, 6, 7),
        ("condition x category", "generated", "circle"): (8, 4, 2, 2, 3, 3),
        ("condition x category", "generated", "square"): (8, 4, 2, 1, 3, 4),
    }
    assert len(summary) == len(expected)
    for (level, source, category), (n, raters, items, real, possibly, fake) in expected.items():
        found = row(summary, level, source, category)
        assert (found["ratings"], found["raters"], found["items"]) == (n, raters, items)
        assert found["share_real"] == pytest.approx(real / n)
        assert found["share_possibly_real"] == pytest.approx(possibly / n)
        assert found["share_fake"] == pytest.approx(fake / n)
        assert found["share_real_or_possibly"] == pytest.approx((real + possibly) / n)
        assert found["real_or_possibly_ci_low"] <= found["share_real_or_possibly"] <= found["real_or_possibly_ci_high"]
        assert found["real_ci_low"] <= found["share_real"] <= found["real_ci_high"]
    assert row(summary, "source", "real")["condition"] == ""
    assert row(summary, "source", "generated")["condition"] == "all"
    assert row(summary, "condition", "generated")["temperature"] == 0.5


def test_headline_and_discrimination_error(rated_study):
    results = study_results(rated_study, bootstrap=200)
    headline = results.headline
    assert headline["generated"]["share"] == pytest.approx(9 / 16)
    assert headline["generated"]["ratings"] == 16
    assert headline["real"]["share"] == pytest.approx(12 / 16)
    assert headline["generated_real"]["share"] == pytest.approx(3 / 16)
    assert headline["real_real_or_possibly"]["share"] == pytest.approx(14 / 16)
    for claim in ("generated", "real"):
        figure = headline[claim]
        # 4 raters and 4 sketches behind each share: no verdict, whatever the interval.
        assert (figure["verdict"], figure["raters"], figure["sketches"]) == ("too little data", 4, 4)
        assert figure["ci_low"] <= figure["share"] <= figure["ci_high"]
    assert headline["generated"]["sentence"].startswith("Generated sketches: 56.2% (95% CI ")
    assert headline["generated"]["sentence"].endswith(
        "of 16 ratings graded real or possibly real. More than half graded real or possibly real: too little data "
        "(a verdict needs at least 10 raters and 10 sketches; here 4 raters, 4 sketches).")
    # g1 is the one generated sketch most raters passed (R P R F); r1, r2, r3 the real ones most graded real.
    assert headline["by_sketch"] == (
        "By sketch: 1 of 4 generated sketches (25.0%) were graded real or possibly real by more than half of their "
        "raters; 3 of 4 real sketches (75.0%) were graded real by more than half of their raters.")
    error = headline["discrimination_error"]
    assert error["real_graded_fake"] == pytest.approx(2 / 16)
    assert error["generated_graded_real_or_possibly"] == pytest.approx(9 / 16)
    assert error["share"] == pytest.approx((2 / 16 + 9 / 16) / 2)
    assert error["ci_low"] <= error["share"] <= error["ci_high"]


def test_including_excluded_participants_never_counts_attention_checks(rated_study):
    results = study_results(rated_study, include_excluded=True, bootstrap=50)
    assert results.participants == {"consented": 6, "finished": 5, "excluded": 2, "counted": 6,
                                    "simulated": 0, "counted_ratings": 42, "attention_check_ratings": 10}
    assert not results.counted["attention_check"].any()
    real, generated = row(results.summary, "source", "real"), row(results.summary, "source", "generated")
    assert (real["ratings"], real["raters"], real["share_real"]) == (21, 6, pytest.approx(16 / 21))
    assert (generated["ratings"], generated["share_real_or_possibly"]) == (21, pytest.approx(14 / 21))


def test_exclusions_by_default(rated_study):
    results = study_results(rated_study, bootstrap=50)
    assert results.participants == {"consented": 6, "finished": 5, "excluded": 2, "counted": 4,
                                    "simulated": 0, "counted_ratings": 32, "attention_check_ratings": 10}
    assert set(results.counted["prolific_pid"]) == {"pid-A", "pid-B", "pid-C", "pid-D"}
    assert results.exclusions.to_dict("records") == [
        {"reason": UNFINISHED, "participants": 1, "ratings": 2},
        {"reason": FAILED_ATTENTION, "participants": 1, "ratings": 8},
        {"reason": DUPLICATE_ID, "participants": 0, "ratings": 0},
        {"reason": "any reason", "participants": 2, "ratings": 10},
    ]


def test_item_scores_and_best_and_worst(rated_study):
    results = study_results(rated_study, bootstrap=50)
    names = {s.public_id: name for name, s in stimuli_by_name(rated_study).items()}
    items = results.items.assign(name=results.items["stimulus"].map(names)).set_index("name")
    # Scores real=2, possibly real=1, fake=0: g1 R P R F, g4 P R F F, r4 P R R F.
    assert items.loc["r1", ["ratings", "mean_score"]].tolist() == [4, 2.0]
    assert items.loc["g1", "mean_score"] == pytest.approx(5 / 4)
    assert items.loc["g4", "mean_score"] == pytest.approx(3 / 4)
    assert items.loc["r4", "mean_score"] == pytest.approx(5 / 4)
    assert items.loc["g2", "share_real_or_possibly"] == pytest.approx(2 / 4)
    best, worst = best_and_worst(results.items, count=2)
    assert [names[s] for s in best["stimulus"]] == ["g1", "g4"]
    assert sorted(names[s] for s in worst["stimulus"]) == ["g2", "g3"]  # tied at 0.5
    best, worst = best_and_worst(results.items)  # 6 each, but only 4 generated sketches: halves
    assert [names[s] for s in best["stimulus"]] == ["g1", "g4"] and len(worst) == 2


def test_clear_verdicts(make_study):
    study = make_study(real=5, generated=5, attention=1)  # 10 of each over two categories
    stimuli = list(Stimulus.objects.filter(study=study).exclude(source="attention"))
    for rater in range(10):
        participant = Participant.objects.create(study=study, finished=timezone.now())
        for position, stimulus in enumerate(stimuli):
            grade = "real" if stimulus.source == "real" else "fake"
            Rating.objects.create(participant=participant, stimulus=stimulus, grade=grade, response_ms=900,
                                  position=position)
    headline = study_results(study, bootstrap=100).headline
    assert (headline["generated"]["share"], headline["generated"]["verdict"]) == (0.0, "not supported")
    assert (headline["real"]["share"], headline["real"]["verdict"]) == (1.0, "supported")
    # Every rating the same: the bootstrap interval is one point, so the Wilson interval of the
    # 100 ratings bounds it (100 / (100 + 1.96^2) = 96.3%).
    assert headline["real"]["sentence"] == (
        "Real sketches: 100.0% (95% CI 96.3% to 100.0%) of 100 ratings graded real. "
        "Mostly (more than half) graded real: supported (the whole interval is above 50%).")
    error = headline["discrimination_error"]
    assert (error["share"], error["ci_low"]) == (0.0, 0.0)
    assert error["ci_high"] == pytest.approx(wilson_interval(0.0, 200)[1])  # 4 / (1/100 + 1/100) ratings


def test_each_of_several_conditions_gets_its_claim(make_study):
    study = make_study(real=1, generated=1, temperatures=(0.3, 0.8), attention=0)
    stimuli = list(Stimulus.objects.filter(study=study))
    for rater in range(3):
        participant = Participant.objects.create(study=study, finished=timezone.now())
        for position, stimulus in enumerate(stimuli):
            hot = stimulus.condition is not None and stimulus.condition.temperature == 0.8
            Rating.objects.create(participant=participant, stimulus=stimulus, grade="fake" if hot else "real",
                                  position=position)
    results = study_results(study, bootstrap=50)
    cold, hot = results.headline["by_condition"]
    labels = results.summary.loc[results.summary["level"] == "condition", "condition"].tolist()
    assert [cold["share"], hot["share"]] == [1.0, 0.0] and "t=0.3" in labels[0] and "t=0.8" in labels[1]
    assert cold["sentence"].startswith(f"Generated sketches, {labels[0]}: 100.0% (95% CI ")
    assert cold["verdict"] == hot["verdict"] == "too little data" and cold["ratings"] == 6
    assert study_results(build_rated_study(make_study), bootstrap=20).headline["by_condition"] == []  # one


def test_one_rater_gives_no_verdict(make_study):
    study = make_study(real=6, generated=6, attention=0)
    participant = Participant.objects.create(study=study, finished=timezone.now())
    for position, stimulus in enumerate(Stimulus.objects.filter(study=study)):
        Rating.objects.create(participant=participant, stimulus=stimulus, grade="real", position=position)
    headline = study_results(study, bootstrap=100).headline
    generated = headline["generated"]
    assert (generated["share"], generated["verdict"]) == (1.0, "too little data")
    assert generated["ci_low"] == pytest.approx(12 / (12 + Z ** 2)) and generated["ci_high"] == 1.0
    assert generated["sentence"].endswith("(a verdict needs at least 10 raters and 10 sketches; here 1 rater, "
                                          "12 sketches).")


def test_the_source_rows_leave_out_categories_that_only_one_source_has(make_study):
    study = make_study(real=2, generated=2, attention=0)
    Stimulus.objects.filter(study=study, source="generated", category="square").delete()
    stimuli = list(Stimulus.objects.filter(study=study))
    for rater in range(3):
        participant = Participant.objects.create(study=study, finished=timezone.now())
        for position, stimulus in enumerate(stimuli):
            grade = "fake" if stimulus.category == "square" else "real"
            Rating.objects.create(participant=participant, stimulus=stimulus, grade=grade, position=position)
    summary = study_results(study, bootstrap=50).summary
    real = row(summary, "source", "real", "all but square")
    assert (real["ratings"], real["items"], real["share_real"]) == (6, 2, 1.0)
    assert row(summary, "source", "generated", "all but square")["ratings"] == 6
    assert row(summary, "source x category", "real", "square")["share_real"] == 0.0  # still in its own row


def test_simulated_participants_are_counted_with_a_warning(make_study):
    study = make_study(slug="pilot", real=1, generated=1, attention=0)
    add_participant(study, "person", {})
    simulated = Participant.objects.create(study=study, prolific_pid=f"{Participant.SIMULATED_PID_PREFIX}ab12",
                                           finished=timezone.now())
    Rating.objects.create(participant=simulated, stimulus=Stimulus.objects.filter(study=study).first(), grade="real",
                          position=0)
    results = study_results(study, bootstrap=20)
    assert results.participants["simulated"] == 1
    assert results.simulated_warning.startswith("1 of the 1 counted participants are simulated (a dry run; ")
    assert "simulate_participants --study pilot --delete" in results.simulated_warning
    assert tidy_ratings(results.ratings)["simulated"].tolist() == [True]
    assert json.loads(to_json(results))["simulated_warning"] == results.simulated_warning


def test_a_study_without_ratings(make_study):
    results = study_results(make_study(slug="empty"))
    assert not results.has_ratings
    assert results.headline is None and results.agreement is None
    assert results.summary.empty and list(results.summary.columns) == SUMMARY_CSV_COLUMNS
    assert results.items.empty
    assert results.stimuli.to_dict("records")[0] == {"source": "real", "category": "circle", "condition": "",
                                                     "stimuli": 4}
    assert results.stimuli["stimuli"].sum() == 4 + 4 + 4 + 4 + 2
    json.loads(to_json(results))


def test_results_are_json_ready_and_repeat_with_the_seed(rated_study):
    first = to_json(study_results(rated_study, bootstrap=100, seed=7))
    assert first == to_json(study_results(rated_study, bootstrap=100, seed=7))
    data = json.loads(first)
    assert data["headline"]["generated"]["share"] == pytest.approx(9 / 16)
    assert data["method"]["resamples"] == 100 and data["method"]["seed"] == 7
    assert {r["level"] for r in data["summary"]} == {"source", "source x category", "condition", "condition x category"}
