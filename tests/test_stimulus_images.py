"""Stimulus images: a participant's are inside their trial pages (no address to share, compare or
guess); staff's by the stimulus's random id. Nothing says anything about a sketch's source or category."""

import base64
import logging
import re

from django.test import Client

from ratings.models import Stimulus, StimulusImage
from tests.participant_steps import answer, url


def shown_png(response):
    found = re.findall(r'<img id="sketch" class="sketch" src="data:image/png;base64,([^"]+)"', response.content.decode())
    assert len(found) == 1
    return base64.b64decode(found[0])


def test_each_trial_page_carries_the_sketch_assigned_there(client, study, participant):
    page = client.get(url("trial", study))
    for assignment in participant.assignments.select_related("stimulus"):
        assert page.context["assignment"].position == assignment.position
        assert shown_png(page) == assignment.stimulus.png
        page = answer(client, study)
    assert page.status_code == 302 and page["Location"] == url("done", study)


def test_a_trial_page_addresses_no_image(client, study, participant):
    """No src but the sketch's own data, no link to an image: nothing two participants could compare
    or a third could ask for."""
    page = client.get(url("trial", study)).content.decode()
    assert re.findall(r'\ssrc="([^"]*)"', page) == [re.search(r'src="(data:image/png;base64,[^"]+)"', page).group(1)]
    assert ".png" not in page


def test_staff_see_every_image_by_its_stimulus(client, study, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    for stimulus in Stimulus.objects.filter(study=study):
        response = client.get(stimulus.get_absolute_url())
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content == stimulus.png


def test_images_by_stimulus_need_a_login(study, participant):
    assert Client().get(participant.assignments.first().stimulus.get_absolute_url()).status_code == 302


def test_people_who_are_not_staff_get_no_image_by_its_stimulus(client, participant, django_user_model):
    client.force_login(django_user_model.objects.create_user("participant", password="x"))
    response = client.get(participant.assignments.first().stimulus.get_absolute_url())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_stimulus_without_its_image_is_not_found_by_staff_and_logged(client, study, django_user_model, caplog):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True))
    stimulus = Stimulus.objects.filter(study=study).first()
    StimulusImage.objects.filter(stimulus=stimulus).delete()
    with caplog.at_level(logging.ERROR, logger="ratings"):
        assert client.get(stimulus.get_absolute_url()).status_code == 404
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"Stimulus {stimulus.public_id} has no image"]


def test_staff_image_addresses_carry_only_a_random_id(participant):
    for assignment in participant.assignments.select_related("stimulus"):
        stimulus = assignment.stimulus
        assert stimulus.get_absolute_url() == f"/researcher/images/{stimulus.public_id}.png"
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", stimulus.public_id)
