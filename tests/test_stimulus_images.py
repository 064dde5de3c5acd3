"""Stimulus images: a participant's at addresses of their own (one random key per assignment, so no
two participants share an image address), served only to their browser; staff's by the stimulus's
random id. Addresses and headers say nothing about a sketch's source or category."""

import re

import pytest
from django.test import Client

from ratings.models import Stimulus, StimulusImage
from tests.participant_steps import start


def test_a_participant_gets_the_images_assigned_to_them(client, participant):
    for assignment in participant.assignments.select_related("stimulus"):
        response = client.get(assignment.get_absolute_url())
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content == assignment.stimulus.png


def test_no_two_participants_share_an_image_address(client, study, participant):
    other = Client()
    other_participant = start(other, study)
    shared = set(participant.assignments.values_list("stimulus", flat=True)) & set(
        other_participant.assignments.values_list("stimulus", flat=True))
    assert shared  # the attention check at least: both get the study's one
    mine = {a.stimulus_id: a.get_absolute_url() for a in participant.assignments.all()}
    theirs = {a.stimulus_id: a.get_absolute_url() for a in other_participant.assignments.all()}
    assert not set(mine.values()) & set(theirs.values())
    for stimulus in shared:
        assert client.get(theirs[stimulus]).status_code == 404  # the same sketch, at their address
        assert other.get(theirs[stimulus]).status_code == 200
        assert other.get(mine[stimulus]).status_code == 404


def test_images_need_the_participants_browser(study, participant):
    assignment = participant.assignments.first()
    assert Client().get(assignment.get_absolute_url()).status_code == 404
    assert Client().get(assignment.stimulus.get_absolute_url()).status_code == 302  # staff's: the login


@pytest.mark.parametrize("path", ["/i/nope.png", "/i/.png", "/i/../pilot.png", "/i/a%00b.png"])
def test_unknown_images_are_not_found(client, participant, path):
    assert client.get(path).status_code == 404


def test_a_stimulus_without_its_image_is_not_found_rather_than_an_error(client, participant):
    assignment = participant.assignments.first()
    StimulusImage.objects.filter(stimulus=assignment.stimulus).delete()
    assert client.get(assignment.get_absolute_url()).status_code == 404


def test_staff_see_every_image_by_its_stimulus(client, study, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    for stimulus in Stimulus.objects.filter(study=study):
        response = client.get(stimulus.get_absolute_url())
        assert response.status_code == 200 and response.content == stimulus.png


def test_people_who_are_not_staff_get_no_image_by_its_stimulus(client, participant, django_user_model):
    client.force_login(django_user_model.objects.create_user("participant", password="x"))
    response = client.get(participant.assignments.first().stimulus.get_absolute_url())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_images_take_no_posts(client, participant):
    assert client.post(participant.assignments.first().get_absolute_url()).status_code == 405


def test_image_headers_are_the_same_for_every_kind_of_sketch(client, participant):
    headers = {}
    for source in Stimulus.Source.values:
        response = client.get(participant.assignments.filter(stimulus__source=source).first().get_absolute_url())
        headers[source] = {k: v for k, v in response.headers.items() if k != "Content-Length"}
    assert headers["real"] == headers["generated"] == headers["attention"]
    assert "Last-Modified" not in headers["real"] and "ETag" not in headers["real"]


def test_image_urls_carry_only_a_random_id(participant):
    for assignment in participant.assignments.select_related("stimulus"):
        assert assignment.get_absolute_url() == f"/i/{assignment.image_key}.png"
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", assignment.image_key)
        assert assignment.stimulus.get_absolute_url() == f"/researcher/images/{assignment.stimulus.public_id}.png"


def test_an_image_costs_one_query(client, participant, django_assert_max_num_queries):
    image = participant.assignments.first().get_absolute_url()
    with django_assert_max_num_queries(1):
        assert client.get(image).status_code == 200
