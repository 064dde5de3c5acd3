"""The site's own pages: the home page (neutral for visitors, the study list for researchers), the
favicon, and the admin's "View site" link that leads there."""

import pytest
from django.test import Client
from django.urls import reverse

from ratings.models import Study
from tests.participant_steps import start


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    return client


def test_a_visitor_gets_a_neutral_page_that_lists_no_study(client, make_study):
    make_study(slug="secret-pilot", title="Pigs and faces")
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Sketchlab" in page and "link you were given" in page
    assert "secret-pilot" not in page and "Pigs and faces" not in page
    assert reverse("admin:login") in page


def test_a_signed_in_user_who_is_not_staff_sees_no_study(client, django_user_model, make_study):
    make_study(slug="secret-pilot")
    client.force_login(django_user_model.objects.create_user("someone", password="x"))
    assert "secret-pilot" not in client.get("/").content.decode()


def test_researchers_get_the_study_list_with_figures_and_links(staff_client, rated_study, make_study):
    make_study(slug="fresh", title="Fresh study")
    start(Client(), rated_study)  # a participant who consented and pressed Start, nothing answered yet
    response = staff_client.get("/")
    page = response.content.decode()
    rows = {row["study"].slug: row for row in response.context["studies"]}
    # rated: 6 participants of tests/results_data.py (E unfinished, F failed a check) and the one just started.
    assert rows["rated"]["participants"] == {"consented": 7, "started": 1, "finished": 5, "in_progress": 1,
                                             "excluded": 3}
    assert rows["rated"]["ratings"] == 42  # attention checks not counted
    assert rows["rated"]["status"] == "open" and rows["fresh"]["participants"]["consented"] == 0
    for link in (reverse("results:study", args=["rated"]), reverse("admin:ratings_study_change", args=[rated_study.pk]),
                 "http://testserver/s/rated/", "http://testserver/s/rated/?PROLIFIC_PID={{%PROLIFIC_PID%}}"):
        assert link in page.replace("&amp;", "&")
    assert "Fresh study" in page


def test_the_study_list_warns_when_recruited_participants_cannot_be_credited(staff_client, rated_study):
    """tests/results_data.py's participants came with a PROLIFIC_PID."""
    assert Study.UNCREDITED_WARNING not in staff_client.get("/").content.decode()  # it has a completion code
    Study.objects.filter(pk=rated_study.pk).update(completion_code="")
    assert Study.UNCREDITED_WARNING in staff_client.get("/").content.decode()
    Study.objects.filter(pk=rated_study.pk).update(completion_url="https://example.org/done")
    assert Study.UNCREDITED_WARNING not in staff_client.get("/").content.decode()


def test_closed_studies_and_studies_without_stimuli_say_so(staff_client, make_study):
    make_study(slug="closed", is_open=False)
    Study.objects.create(slug="empty")
    rows = {row["study"].slug: row for row in staff_client.get("/").context["studies"]}
    assert (rows["closed"]["status"], rows["empty"]["status"]) == ("closed", "no stimuli yet")


def test_the_favicon_is_an_image(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG\r\n")


def test_the_admins_view_site_link_leads_to_the_study_list(staff_client, django_user_model, make_study):
    make_study(slug="pilot")
    admin = staff_client.get(reverse("admin:index")).content.decode()
    assert 'href="/">View site' in admin.replace("\n", "")
    assert "pilot" in staff_client.get("/").content.decode()
