"""study_report: the printed report and its JSON."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ratings.stats.frame import ATTENTION_RULE
from ratings.stats.results import study_results
from tests.results_data import GRADES_BY_PARTICIPANT, ORDER, add_participant


def report(*args):
    out = StringIO()
    call_command("study_report", *args, stdout=out)
    return out.getvalue()


def test_report_starts_with_the_headline_and_shows_every_section(rated_study):
    text = report("--study", "rated", "--bootstrap", "200")
    results = study_results(rated_study, bootstrap=200)
    lines = text.splitlines()
    assert lines[0] == "Study rated: Sketch study"
    assert lines[2] == "Headline (shares of ratings)"
    assert lines[3].startswith("  Generated sketches: 56.2% (95% CI ")
    flat = " ".join(text.split())
    for sentence in (results.headline["generated"]["sentence"], results.headline["real"]["sentence"],
                     results.headline["discrimination_error"]["sentence"],
                     results.agreement["krippendorff"]["sentence"], results.agreement["fleiss"]["sentence"],
                     ATTENTION_RULE):
        assert sentence in flat
    for section in ("Progress", "Stimuli by source, category and condition", "Excluded participants (left out;",
                    "Grade shares (percent of ratings, 95% CI in brackets)", "  By source", "  By category",
                    "Agreement between raters",
                    "Best-rated generated sketches", "Worst-rated generated sketches", "Method"):
        assert section in text
    assert "Participants: 6 consented, 5 finished, 2 excluded; counted: 4 participants, 32 ratings" in text
    assert "Attention checks: 1 of the 5 participants who graded one failed (20.0%)." in flat
    assert "two-way (crossed) cluster bootstrap" in flat and "200 resamples, seed 20240531" in flat


def test_simulated_participants_get_a_warning_first(rated_study):
    assert "WARNING" not in report("--study", "rated", "--bootstrap", "20")
    add_participant(rated_study, "SIM", {"r1": "R"}).__class__.objects.filter(prolific_pid="pid-SIM").update(
        prolific_pid="SIMULATED-1")
    text = report("--study", "rated", "--bootstrap", "20", "--include-excluded")
    assert text.split("\n")[2].startswith("  WARNING: 1 of the 7 counted participants are simulated (a dry run;")


def test_including_excluded_participants(rated_study):
    text = report("--study", "rated", "--bootstrap", "50", "--include-excluded")
    assert "Generated sketches: 66.7% (95% CI" in text
    assert "Excluded participants (counted here, on request)" in text


def test_json_is_one_object_with_everything(rated_study):
    data = json.loads(report("--study", "rated", "--json", "--bootstrap", "100", "--seed", "3"))
    assert set(data) == {"study", "title", "include_excluded", "simulated_warning", "method", "stimuli",
                         "participants", "exclusions", "headline", "summary", "items", "agreement", "progress"}
    assert data["headline"]["generated"]["share"] == pytest.approx(9 / 16)
    assert data["headline"]["real"]["verdict"] == "too little data"  # 4 raters
    assert data["simulated_warning"] == ""
    assert data["participants"]["counted_ratings"] == 32
    assert data["exclusions"][-1] == {"reason": "any reason", "participants": 2, "ratings": 10}
    assert data["method"]["seed"] == 3 and data["method"]["resamples"] == 100
    progress = data.pop("progress")
    assert data == study_results(rated_study, bootstrap=100, seed=3).as_dict()
    assert progress["attention"] == {"answered": 5, "failed": 1}
    assert [cell["ratings"] for cell in progress["cells"]] == [8, 8, 8, 8]
    assert progress["estimate"]["share"] == pytest.approx(9 / 16)


def test_a_study_without_ratings_shows_its_stimuli(make_study):
    make_study(slug="fresh", categories=("circle",), real=3, generated=2, temperatures=(0.5, 1.0), attention=1)
    text = report("--study", "fresh")
    assert "No ratings yet." in text
    assert "Headline" not in text
    counts = text.split("Stimuli by source, category and condition\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in counts[1:]] == ["real", "generated", "generated", "attention"]
    assert counts[1].split()[-1] == "3" and counts[2].split()[-1] == "2" and counts[4].split()[-1] == "1"
    assert "t=0.5" in counts[2] and "t=1" in counts[3]
    data = json.loads(report("--study", "fresh", "--json"))
    assert data["headline"] is None and data["summary"] == [] and len(data["stimuli"]) == 4


def test_a_study_whose_raters_are_all_excluded_says_so(make_study):
    study = make_study(slug="careless", categories=("circle", "square"), real=2, generated=2, attention=2)
    add_participant(study, "F", dict(zip(ORDER, GRADES_BY_PARTICIPANT["F"].replace(" ", ""))))
    text = " ".join(report("--study", "careless").split())
    assert "No counted ratings: the 8 ratings there are all come from excluded participants" in text
    assert "No ratings yet." not in text and "Headline" not in text
    assert "Headline" in report("--study", "careless", "--include-excluded")


def test_unknown_study_and_bad_options(db):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        report("--study", "nope")
    with pytest.raises(CommandError, match="argument --bootstrap: invalid positive value: '0'"):
        report("--study", "nope", "--bootstrap", "0")


def test_a_warning_when_recruited_participants_cannot_be_credited(rated_study):
    """The rated study's participants came with a PROLIFIC_PID."""
    rated_study.completion_code = ""
    rated_study.save()
    text = report("--study", "rated", "--bootstrap", "20", "--no-estimate")
    assert text.split("\n")[2].startswith("  WARNING: Neither a completion code nor a completion URL is set")
    rated_study.completion_url = "https://app.prolific.com/submissions/complete?cc=X"
    rated_study.save()
    assert "WARNING" not in report("--study", "rated", "--bootstrap", "20", "--no-estimate")


def test_an_unknown_study_lists_the_studies_there_are(make_study):
    with pytest.raises(CommandError, match=r"^No study with slug 'nope'; there are no studies yet\.$"):
        report("--study", "nope")
    make_study(slug="pilot"), make_study(slug="main-study")
    with pytest.raises(CommandError, match=r"^No study with slug 'nope'; the studies are: main-study, pilot\.$"):
        report("--study", "nope")
