"""archive_study writes a study into one zip file that holds what a publication needs, and
restore_study (tests/test_restore_study.py) rebuilds it from that file with identical results."""

import hashlib
import io
import json
import zipfile
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from ratings.models import Assignment, Condition, Participant, Rating, Stimulus, StimulusImage, Study
from tests.participant_steps import answer, start


def archive(slug, out):
    output = StringIO()
    call_command("archive_study", "--study", slug, "--out", str(out), stdout=output)
    return output.getvalue()


def report_json(slug):
    output = StringIO()
    call_command("study_report", "--study", slug, "--json", "--no-estimate", stdout=output)
    return json.loads(output.getvalue())


@pytest.fixture
def study(rated_study):
    """The hand-rated study, and a participant who went through the pages part of the way."""
    browser = Client()
    start(browser, rated_study, PROLIFIC_PID="through-the-pages")
    answer(browser, rated_study, "real", response_ms=1500)
    answer(browser, rated_study, "fake", response_ms=900)
    return rated_study


def test_the_archive_holds_what_a_publication_needs(study, tmp_path):
    out = tmp_path / "rated.zip"
    said = archive("rated", out)
    assert said.startswith("Archived study rated (conditions: 1, stimuli: 10, participants: 7, assignments: 10, "
                           f"ratings: {Rating.objects.count()}) at code version ") and str(out) in said
    with zipfile.ZipFile(out) as zipped:
        files = {name: zipped.read(name) for name in zipped.namelist()}
    manifest = json.loads(files["manifest.json"])
    assert manifest["study"] == "rated" and manifest["code_version"] not in ("", None)
    assert manifest["packages"]["Django"] and manifest["counts"]["ratings"] == Rating.objects.count()
    assert manifest["sha256"] == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()
                                  if name != "manifest.json"}
    # Every stimulus's image as participants saw it, and its provenance.
    for stimulus in Stimulus.objects.filter(study=study):
        assert files[f"stimuli/{stimulus.public_id}.png"] == stimulus.png
    stimuli = pd.read_csv(io.BytesIO(files["stimuli.csv"]), keep_default_na=False).set_index("public_id")
    assert len(stimuli) == 10
    generated = Stimulus.objects.filter(study=study, source="generated").first()
    assert stimuli.loc[generated.public_id, ["source", "checkpoint_sha256", "temperature", "image"]].tolist() == [
        "generated", generated.condition.checkpoint_sha256, "0.5", f"stimuli/{generated.public_id}.png"]
    # The results as study_report and export_ratings give them.
    assert json.loads(files["results.json"]) == report_json("rated")
    ratings = pd.read_csv(io.BytesIO(files["ratings.csv"]))
    assert len(ratings) == Rating.objects.count() and ratings["server_ms"].notna().sum() == 2
    assert len(pd.read_csv(io.BytesIO(files["participants.csv"]))) == 7
    assert "results.json" in files["README.txt"].decode()


def test_a_study_archived_and_restored_into_an_empty_database_gives_identical_results(study, tmp_path):
    out = tmp_path / "rated.zip"
    archive("rated", out)
    before = snapshot(study)
    empty_the_database()
    output = StringIO()
    call_command("restore_study", str(out), stdout=output)
    assert "Restored study rated (conditions: 1, stimuli: 10, participants: 7," in output.getvalue()
    assert "identical to the archived ones" in output.getvalue()
    restored = Study.objects.get(slug="rated")
    assert snapshot(restored) == before
    # The participant part of the way through continues at the same sketch, with the same cookie.
    participant = Participant.objects.get(prolific_pid="through-the-pages")
    assert participant.next_assignment().position == 3


def test_a_second_archive_of_the_restored_study_holds_the_same_files(study, tmp_path):
    archive("rated", tmp_path / "first.zip")
    empty_the_database()
    call_command("restore_study", str(tmp_path / "first.zip"), stdout=StringIO())
    archive("rated", tmp_path / "second.zip")
    first, second = (zipfile.ZipFile(tmp_path / name) for name in ("first.zip", "second.zip"))
    assert first.namelist() == second.namelist()
    for name in first.namelist():
        if name not in ("manifest.json", "data.json"):  # written at another time; rows with new database ids
            assert first.read(name) == second.read(name), name


def test_clear_errors(study, tmp_path):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        archive("nope", tmp_path / "x.zip")
    with pytest.raises(CommandError, match="is a folder"):
        archive("rated", tmp_path)
    with pytest.raises(CommandError, match="does not exist"):
        archive("rated", tmp_path / "missing" / "x.zip")
    assert not list(tmp_path.iterdir())


def snapshot(study):
    """Everything of a study but database ids: its rows by their own unique ids, its images, and
    the results and exports computed from them."""
    from ratings.stats.exports import csv_text, participants_table, tidy_ratings
    from ratings.stats.frame import ratings_frame

    def rows(queryset, *fields):
        return sorted(queryset.values_list(*fields))

    return {
        "study": rows(Study.objects.filter(pk=study.pk), "slug", "title", "instructions", "consent_text",
                      "items_per_participant", "attention_checks", "is_open", "recruitment_id_required",
                      "completion_code", "completion_url", "created"),
        "conditions": rows(Condition.objects.filter(study=study), "checkpoint_sha256", "checkpoint_name",
                           "temperature", "mode", "reject_degenerate", "created"),
        "stimuli": rows(Stimulus.objects.filter(study=study), "public_id", "category", "source",
                        "condition__temperature", "dataset_file", "dataset_split", "dataset_index", "seed",
                        "sample_index", "ended", "num_points", "created"),
        "images": rows(StimulusImage.objects.filter(stimulus__study=study), "stimulus__public_id", "png"),
        "participants": rows(Participant.objects.filter(study=study), "token", "prolific_pid", "attempt",
                             "resume_code", "external_study_id", "external_session_id", "consent_token",
                             "consented", "started", "finished"),
        "assignments": rows(Assignment.objects.filter(participant__study=study), "participant__token",
                            "stimulus__public_id", "position"),
        "ratings": rows(Rating.objects.filter(participant__study=study), "participant__token",
                        "stimulus__public_id", "grade", "response_ms", "server_ms", "position", "created"),
        "results": report_json(study.slug),
        "ratings.csv": csv_text(tidy_ratings(ratings_frame(study))),
        "participants.csv": csv_text(participants_table(study)),
    }


def empty_the_database():
    Rating.objects.all().delete()
    Assignment.objects.all().delete()
    Participant.objects.all().delete()
    Study.objects.all().delete()
    assert not Stimulus.objects.exists() and not StimulusImage.objects.exists() and not Condition.objects.exists()
