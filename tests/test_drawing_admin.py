"""The researchers' review of drawings in the admin: thumbnails by the stimuli's renderer, filters by
prompt and review state, rejection with a reason; staff only."""

import pytest
from django.test import Client
from django.urls import reverse

from generator.render import sketch_png
from ratings.drawing import Drawing
from tests.participant_steps import circle, consent, draw, url

LIST = reverse("admin:ratings_drawing_changelist")


@pytest.fixture
def drawings(make_study):
    """A circle, a square drawn in half a second, and an empty drawing (the time ran out)."""
    study = make_study(slug="collect", drawings_per_participant=3, drawing_categories="circle,square")
    browser = Client()
    participant = consent(browser, study, PROLIFIC_PID="drawer1")
    browser.post(url("drawing", study))
    square = [[[100, 900, 900, 100, 100], [100, 100, 900, 900, 100], [0, 100, 200, 300, 400]]]
    made = {}
    for prompt in participant.prompts.all():
        kind = "empty" if prompt.position == 3 else prompt.category
        draw(browser, study, {"circle": circle(), "square": square, "empty": []}[kind], position=prompt.position)
        made[kind if kind not in made else f"{kind}2"] = Drawing.objects.get(prompt=prompt)
    return made


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("researcher", password="x", is_staff=True,
                                                             is_superuser=True))
    return client


def listed(client, query=""):
    page = client.get(LIST + query).content.decode()
    return {d.key_id for d in Drawing.objects.all() if d.key_id in page}


def test_the_list_shows_each_drawing_as_a_thumbnail_drawn_like_a_stimulus(staff, drawings):
    page = staff.get(LIST).content.decode()
    for drawing in Drawing.objects.all():
        image = reverse("admin:ratings_drawing_image", args=[drawing.pk])
        assert f'<img src="{image}" alt="drawing of {drawing.prompt.category}" width="64"' in page
        response = staff.get(image)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content == sketch_png(drawing.stroke3())
    assert "rejected: Empty" in page and "accepted (under 1 s)" in page


def test_filters_by_prompt_and_by_review(staff, drawings):
    categories = {d.key_id: d.prompt.category for d in Drawing.objects.all()}
    for category in ("circle", "square"):
        assert listed(staff, f"?prompt__category={category}") == {k for k, c in categories.items() if c == category}
    empty = drawings["empty"].key_id
    assert listed(staff, "?review=rejected") == {empty}
    assert listed(staff, "?review=accepted") == set(categories) - {empty}
    fast = {d.key_id for d in Drawing.objects.filter(rejection="") if d.too_fast}
    assert fast and listed(staff, "?review=fast") == fast


def test_drawings_are_rejected_with_a_reason_and_accepted_again(staff, drawings):
    chosen = [d.pk for d in Drawing.objects.filter(rejection="")]
    response = staff.post(LIST, {"action": "reject_offensive", "_selected_action": chosen})
    assert response.status_code == 302
    assert set(Drawing.objects.filter(pk__in=chosen).values_list("rejection", flat=True)) == {"offensive"}
    staff.post(LIST, {"action": "accept", "_selected_action": chosen[:1]})
    assert Drawing.objects.get(pk=chosen[0]).accepted
    assert Drawing.objects.get(pk=chosen[1]).rejection == "offensive"


def test_the_change_page_edits_only_the_review_and_other_needs_a_note(staff, drawings):
    drawing = Drawing.objects.filter(rejection="").first()
    change = reverse("admin:ratings_drawing_change", args=[drawing.pk])
    page = staff.get(change).content.decode()
    assert 'width="256"' in page and drawing.key_id in page
    refused = staff.post(change, {"rejection": "other", "rejection_note": " ", "strokes": "[]"})
    assert refused.status_code == 200 and "Say why the drawing is rejected." in refused.content.decode()
    assert Drawing.objects.get(pk=drawing.pk).accepted
    assert staff.post(change, {"rejection": "other", "rejection_note": "a cat, not a circle", "strokes": "[]",
                               "duration_ms": 1}).status_code == 302
    saved = Drawing.objects.get(pk=drawing.pk)
    assert (saved.rejection, saved.rejection_note) == ("other", "a cat, not a circle")
    assert saved.strokes == drawing.strokes and saved.duration_ms == drawing.duration_ms
    assert staff.get(reverse("admin:ratings_drawing_add")).status_code == 403


def test_people_who_are_not_staff_see_no_drawing(client, django_user_model, drawings):
    image = reverse("admin:ratings_drawing_image", args=[drawings["circle"].pk])
    logged_in = Client()
    logged_in.force_login(django_user_model.objects.create_user("participant", password="x"))
    for browser in (client, logged_in):
        for address in (image, LIST):
            response = browser.get(address)
            assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
