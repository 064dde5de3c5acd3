"""The results page and its downloads: staff only, the same numbers as study_report and export_ratings."""

import io
import subprocess
import sys
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils.html import escape

from ratings.models import Participant, Rating
from tests.conftest import ROOT


PAGES = ["results:index", "results:study", "results:ratings_csv", "results:summary_csv", "results:participants_csv"]


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    return client


def url(name, study="rated"):
    return reverse(name) if name == "results:index" else reverse(name, args=[study])


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_the_admin_login(client, rated_study, name):
    response = client.get(url(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", PAGES)
def test_users_who_are_not_staff_get_nothing(client, django_user_model, rated_study, name):
    client.force_login(django_user_model.objects.create_user("someone", password="x"))
    response = client.get(url(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", PAGES)
def test_participants_with_a_session_get_nothing(client, rated_study, name):
    session = client.session
    session["participant"] = Participant.objects.filter(study=rated_study).first().token
    session.save()
    response = client.get(url(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_results_page_shows_headline_tables_charts_and_sketches(staff_client, rated_study):
    response = staff_client.get(url("results:study"))
    assert response.status_code == 200
    results = response.context["results"]
    page = response.content.decode()
    assert results.headline["generated"]["share"] == pytest.approx(9 / 16)
    for sentence in (results.headline["generated"]["sentence"], results.headline["real"]["sentence"],
                     results.headline["discrimination_error"]["sentence"], results.headline["by_sketch"],
                     results.agreement["krippendorff"]["sentence"], results.agreement["fleiss"]["sentence"]):
        assert sentence.replace("'", "&#x27;") in page
    assert page.count('src="data:image/png;base64,') == 2 + 2 + 2  # two charts, best 2, worst 2
    assert [title for title, _ in response.context["charts"]] == ["By source", "By source and category"]
    # One condition: its rows would repeat the generated ones, so only by source and by category.
    assert [(title, len(table["rows"])) for title, table in response.context["summary"]] == [
        ("By source", 2), ("By category", 4)]
    generated = results.summary[(results.summary["level"] == "source") & (results.summary["source"] == "generated")]
    low, high = generated[["real_or_possibly_ci_low", "real_or_possibly_ci_high"]].iloc[0] * 100
    assert f'<td class="number">56.2% ({low:.1f}-{high:.1f}%)</td>' in page
    assert url("results:ratings_csv") in page and url("results:summary_csv") in page
    assert "admin/css/base.css" not in page and '<nav class="site-nav"' in page  # the study's look, not the admin's
    assert ('<td>failed attention check</td><td class="number">1</td><td class="number">8</td>'
            in page.replace("\n", ""))


def test_results_page_warns_of_simulated_participants(staff_client, rated_study):
    assert "simulated" not in staff_client.get(url("results:study")).content.decode()
    Participant.objects.filter(prolific_pid="pid-A").update(prolific_pid=Participant.SIMULATED_PID_PREFIX + "a")
    response = staff_client.get(url("results:study"))
    warning = response.context["results"].simulated_warning
    assert warning.startswith("1 of the 4 counted participants are simulated")
    assert f'<p class="warning">{escape(warning)}</p>' in response.content.decode()


def test_results_page_can_count_excluded_participants(staff_client, rated_study):
    response = staff_client.get(url("results:study"), {"include_excluded": "1"})
    assert response.context["results"].headline["generated"]["share"] == pytest.approx(14 / 21)
    assert url("results:summary_csv") + "?include_excluded=1" in response.content.decode()


def test_results_page_of_a_study_without_ratings(staff_client, make_study):
    make_study(slug="fresh", temperatures=(0.5, 1.0))
    response = staff_client.get(url("results:study", "fresh"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "No ratings yet." in page and "data:image/png" not in page
    assert len(response.context["stimuli"]["rows"]) == 2 + 4 + 2


def test_one_chart_per_condition_when_there_are_several(staff_client, make_study):
    study = make_study(slug="two", categories=("circle",), real=1, generated=1, temperatures=(0.5, 1.0),
                       attention=1)
    stimuli = list(study.stimuli.exclude(source="attention"))
    for rater in range(3):
        participant = Participant.objects.create(study=study, finished="2025-01-01T00:00Z")
        for position, stimulus in enumerate(stimuli):
            participant.ratings.create(stimulus=stimulus, grade=Rating.Grade.values[(rater + position) % 3],
                                       response_ms=500, position=position)
    response = staff_client.get(url("results:study", "two"))
    assert [title for title, _ in response.context["charts"]][-1] == "Generated, by condition"


def test_unknown_study_is_not_found(staff_client, db):
    assert staff_client.get(url("results:study", "nope")).status_code == 404
    assert staff_client.get(url("results:ratings_csv", "nope")).status_code == 404


def test_the_old_index_address_leads_to_the_study_list(staff_client, db):
    response = staff_client.get(url("results:index"))
    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_ratings_download_is_the_exported_file(staff_client, rated_study, tmp_path):
    response = staff_client.get(url("results:ratings_csv"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="rated-ratings.csv"'
    call_command("export_ratings", "--study", "rated", "--out", str(tmp_path / "r.csv"), stdout=StringIO())
    assert response.content == (tmp_path / "r.csv").read_bytes()
    ratings = pd.read_csv(io.BytesIO(response.content))
    counted = ratings[~ratings["attention_check"] & ratings["exclusion"].isna()]
    generated = counted[counted["source"] == "generated"]
    assert generated["grade"].isin(["real", "possibly_real"]).mean() == pytest.approx(9 / 16)


def test_participants_download_is_the_exported_file(staff_client, rated_study, tmp_path):
    response = staff_client.get(url("results:participants_csv"))
    assert response["Content-Disposition"] == 'attachment; filename="rated-participants.csv"'
    call_command("export_ratings", "--study", "rated", "--out", str(tmp_path / "p.csv"), "--participants",
                 stdout=StringIO())
    assert response.content == (tmp_path / "p.csv").read_bytes()
    assert url("results:participants_csv") in staff_client.get(url("results:study")).content.decode()


def test_summary_download_is_the_exported_summary(staff_client, rated_study, tmp_path):
    response = staff_client.get(url("results:summary_csv"), {"include_excluded": "1"})
    assert response["Content-Disposition"] == 'attachment; filename="rated-summary-including-excluded.csv"'
    call_command("export_ratings", "--study", "rated", "--out", str(tmp_path / "s.csv"), "--summary",
                 "--include-excluded", stdout=StringIO())
    assert response.content == (tmp_path / "s.csv").read_bytes()
    summary = pd.read_csv(io.BytesIO(response.content))
    generated = summary[(summary["level"] == "source") & (summary["source"] == "generated")].iloc[0]
    assert generated["share_real_or_possibly"] == pytest.approx(14 / 21)


def test_results_code_does_not_import_torch():
    code = ("import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'studysite.settings'; django.setup(); "
            "import ratings.results_views, ratings.charts, ratings.management.commands.study_report, "
            "ratings.management.commands.export_ratings; from django.urls import reverse; reverse('results:index'); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_results_page_warns_when_recruited_participants_cannot_be_credited(staff_client, rated_study):
    assert rated_study.UNCREDITED_WARNING not in staff_client.get(url("results:study")).content.decode()
    rated_study.completion_code = ""
    rated_study.save()
    page = staff_client.get(url("results:study")).content.decode()
    assert f'<p class="warning">{escape(rated_study.UNCREDITED_WARNING)}</p>' in page


def test_results_page_shows_the_progress(staff_client, rated_study):
    rated_study.target_participants, rated_study.items_per_participant = 10, 8
    rated_study.save()
    response = staff_client.get(url("results:study"), {"include_excluded": "1"})
    page = response.content.decode()
    progress = response.context["progress"]
    for sentence in progress.sentences():
        assert escape(sentence) in page
    # Counted with E (who graded real and generated circle 0) and F (everything): each cell's ratings
    # against 10 participants x 8 items / 4 cells.
    rows = [[cell["value"] for cell in row] for row in response.context["progress_cells"]["rows"]]
    assert [row[:2] + row[4:7] for row in rows] == [
        ["real", "circle", 11, 20, "55%"], ["real", "square", 10, 20, "50%"],
        ["generated", "circle", 11, 20, "55%"], ["generated", "square", 10, 20, "50%"]]
