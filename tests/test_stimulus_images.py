"""Stimulus images: served only to the participant they are assigned to (and staff), at URLs and
with headers that say nothing about a sketch's source or category."""

import re

import pytest
from django.test import Client

from ratings.models import Stimulus
from tests.participant_steps import start


def assigned(participant, source):
    return participant.assignments.filter(stimulus__source=source).first().stimulus


def test_a_participant_gets_the_images_assigned_to_them(client, participant):
    for assignment in participant.assignments.select_related("stimulus"):
        response = client.get(assignment.stimulus.get_absolute_url())
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content == assignment.stimulus.image_path.read_bytes()


def test_images_not_assigned_to_the_participant_are_not_found(client, study, participant):
    others = Stimulus.objects.filter(study=study).exclude(assignments__participant=participant)
    assert others.exists()
    for stimulus in others:
        assert client.get(stimulus.get_absolute_url()).status_code == 404


def test_images_need_a_participant(study, participant):
    stimulus = participant.assignments.first().stimulus
    assert Client().get(stimulus.get_absolute_url()).status_code == 404


def test_another_participants_images_are_not_found(client, study, participant):
    other = Client()
    other_participant = start(other, study)
    theirs_only = other_participant.assignments.exclude(stimulus__assignments__participant=participant)
    assert theirs_only.exists()
    for assignment in theirs_only.select_related("stimulus"):
        assert client.get(assignment.stimulus.get_absolute_url()).status_code == 404
        assert other.get(assignment.stimulus.get_absolute_url()).status_code == 200


@pytest.mark.parametrize("path", ["/i/nope.png", "/i/.png", "/i/../pilot.png", "/i/a%00b.png"])
def test_unknown_images_are_not_found(client, participant, path):
    assert client.get(path).status_code == 404


def test_a_missing_image_file_is_not_found_rather_than_an_error(client, participant):
    stimulus = participant.assignments.first().stimulus
    stimulus.image_path.unlink()
    assert client.get(stimulus.get_absolute_url()).status_code == 404


def test_staff_see_every_image(client, study, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    for stimulus in Stimulus.objects.filter(study=study):
        assert client.get(stimulus.get_absolute_url()).status_code == 200


def test_images_take_no_posts(client, participant):
    assert client.post(participant.assignments.first().stimulus.get_absolute_url()).status_code == 405


def test_image_headers_are_the_same_for_every_kind_of_sketch(client, participant):
    headers = {}
    for source in Stimulus.Source.values:
        response = client.get(assigned(participant, source).get_absolute_url())
        headers[source] = {k: v for k, v in response.headers.items() if k != "Content-Length"}
    assert headers["real"] == headers["generated"] == headers["attention"]
    assert "Last-Modified" not in headers["real"] and "ETag" not in headers["real"]


def test_image_urls_carry_only_a_random_id(participant):
    for assignment in participant.assignments.select_related("stimulus"):
        stimulus = assignment.stimulus
        assert stimulus.get_absolute_url() == f"/i/{stimulus.public_id}.png"
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", stimulus.public_id)
