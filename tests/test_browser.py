"""Whole participant sessions in Chromium, driven by Playwright against the live server: with the
mouse and with the keyboard alone, on a phone-sized screen."""

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from ratings.models import Participant, Rating, StimulusImage
from tests.conftest import ROOT

# Playwright's sync API runs an event loop in this thread; Django refuses database calls from a
# thread with a running loop unless told they are safe, which they are here (no async code).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
TOUCH = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}  # a phone's touch screen
ARTIFACTS = ROOT / "test-artifacts"
TRIALS = 4 + 1  # items_per_participant + attention checks

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH"),
]


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=15_000)  # a busy CI machine can take a while to draw a page
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def study(transactional_db, make_study):
    return make_study(slug="pilot", items_per_participant=4, attention=1, completion_code="BR0WSER")


@pytest.fixture
def page(browser, live_server):
    """A fresh phone-sized browser tab; the test fails on any error in the page's script."""
    context = browser.new_context(viewport=PHONE, base_url=live_server.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []


@pytest.fixture
def open_page(browser, live_server):
    """open_page(**context_options) -> a fresh tab on a browser with those options (a touch
    screen, another screen size); the test fails on any error in a page's script."""
    contexts, errors = [], []

    def open_page(**options):
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == []


def grade_button(page, label):
    return page.get_by_role("button", name=label, exact=True)


def progress(page):
    return page.locator(".progress span")


def test_a_session_with_the_mouse(page, study):
    page.goto("/s/pilot/?PROLIFIC_PID=mouse1&STUDY_ID=s1&SESSION_ID=x1")
    page.get_by_role("link", name="Continue").click()
    page.get_by_role("button", name="I agree to take part").click()
    page.get_by_role("button", name="Start").click()

    expect(progress(page)).to_have_text(f"1 / {TRIALS}")
    expect(page.get_by_role("img", name="sketch")).to_be_visible()
    grade_button(page, "Possibly real").dblclick()  # a double click answers once
    labels = ["Real", "Fake", "Real", "Fake"]
    for position, label in enumerate(labels, start=2):
        expect(progress(page)).to_have_text(f"{position} / {TRIALS}")
        grade_button(page, label).click()

    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.get_by_text("BR0WSER")).to_be_visible()
    participant = Participant.objects.get(prolific_pid="mouse1")
    assert (participant.external_study_id, participant.external_session_id) == ("s1", "x1")
    assert participant.finished is not None
    ratings = list(participant.ratings.values_list("position", "grade"))
    assert ratings == [(1, "possibly_real"), (2, "real"), (3, "fake"), (4, "real"), (5, "fake")]
    assert all(ms is not None for ms in participant.ratings.values_list("response_ms", flat=True))


def test_double_clicks_on_agree_and_start_send_each_form_once(page, study):
    page.goto("/s/pilot/consent/")
    assert posts_of_a_slow_double_click(page, "I agree to take part") == 1
    page.wait_for_url("**/instructions/")
    assert posts_of_a_slow_double_click(page, "Start") == 1
    expect(progress(page)).to_have_text(f"1 / {TRIALS}")
    assert Participant.objects.get().assignments.count() == TRIALS


def posts_of_a_slow_double_click(page, name):
    """Click the button twice, the second time while the first post is on its way, as a person's
    double click on a slow connection; returns how many posts the page sent."""
    held = []
    page.route("**/*", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    box = page.get_by_role("button", name=name).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    while not held:
        page.wait_for_timeout(20)
    page.mouse.click(x, y)
    page.wait_for_timeout(300)
    for route in held:
        route.continue_()
    page.unroute("**/*")
    return len(held)


def test_a_session_with_the_keyboard_alone(page, study):
    page.goto("/s/pilot/")
    tab_to(page, "Continue").press("Enter")
    page.wait_for_url("**/consent/")
    tab_to(page, "I agree to take part").press("Enter")
    page.wait_for_url("**/instructions/")
    tab_to(page, "Start").press("Enter")

    keys = ["1", "2", "3", "3", "1"]
    for position, key in enumerate(keys, start=1):
        expect(progress(page)).to_have_text(f"{position} / {TRIALS}")
        expect(grade_button(page, "Real")).to_be_enabled()
        page.keyboard.press(key)

    expect(page.get_by_text("BR0WSER")).to_be_visible()
    grades = list(Participant.objects.get().ratings.values_list("grade", flat=True))
    assert grades == ["real", "possibly_real", "fake", "fake", "real"]


def test_the_trial_page_fits_a_phone_screen(page, study):
    start(page)
    expect(grade_button(page, "Real")).to_be_enabled()
    sketch = page.get_by_role("img", name="sketch").bounding_box()
    assert sketch["width"] >= 300 and sketch["width"] == sketch["height"]
    assert abs(sketch["x"] + sketch["width"] / 2 - PHONE["width"] / 2) <= 1  # centred
    for label in ("Real", "Possibly real", "Fake"):
        box = grade_button(page, label).bounding_box()
        assert box["height"] >= 44 and box["y"] + box["height"] <= PHONE["height"], label
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "trial-phone.png")


def test_an_answered_sketchs_page_reloads_without_sending_the_answer_again(page, study):
    """The next sketch's page is the answer's response: a reload asks for it (a GET) and shows it
    again, with no resubmission prompt and no second answer."""
    start(page)
    grade_button(page, "Real").click()
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    methods = []
    page.on("request", lambda request: methods.append(request.method) if "/trial/" in request.url else None)
    page.reload()
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    expect(grade_button(page, "Real")).to_be_enabled()
    assert methods == ["GET"]
    assert stored() == [(1, "real")]


def start(page):
    """Consent and start with the mouse: the first trial is on screen."""
    page.goto("/s/pilot/consent/")
    page.get_by_role("button", name="I agree to take part").click()
    page.get_by_role("button", name="Start").click()
    expect(progress(page)).to_have_text(f"1 / {TRIALS}")


def tab_to(page, name):
    """Press Tab until the control named `name` has the focus, proving the keyboard reaches it."""
    for _ in range(10):
        page.keyboard.press("Tab")
        focused = page.locator(":focus")
        if focused.count() and focused.inner_text().strip() == name:
            return focused
    raise AssertionError(f"{name!r} cannot be reached with the Tab key")


def stored():
    return list(Rating.objects.order_by("position").values_list("position", "grade"))


def centre(page, label):
    box = grade_button(page, label).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def wait_until_shown(page, position, since, gap_ms=200):
    """Wait until the sketch at `position` is painted, then until `gap_ms` have passed since
    `since` (time.monotonic()), or not at all if that much time has gone by already."""
    page.wait_for_function("""position => {
        const shown = document.querySelector(".progress span"), sketch = document.getElementById("sketch");
        return shown && sketch && shown.textContent.startsWith(position + " ") && sketch.classList.contains("shown");
    }""", arg=position, polling="raf")
    shown = time.monotonic()
    page.wait_for_timeout(max(0, gap_ms - (shown - since) * 1000))
    return shown


def skip_if_late(shown):
    """The second press must land while the new sketch is fresh (the buttons open 400 ms after
    it is shown); on a machine too busy to press that soon the test proves nothing."""
    if time.monotonic() - shown > 0.3:
        pytest.skip("the browser was too slow to press again within 300 ms of showing the sketch")


def press_twice_across_two_trials(page, label, press):
    """Answer the first sketch by pressing `label` with press(x, y), and press it again as soon as
    the second sketch shows: only the first press may answer."""
    start(page)
    expect(grade_button(page, label)).to_be_enabled()
    x, y = centre(page, label)
    press(x, y)
    shown = wait_until_shown(page, 2, time.monotonic())
    press(x, y)
    skip_if_late(shown)
    page.wait_for_timeout(1000)
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")


def test_a_double_click_does_not_answer_the_next_sketch_unseen(page, study):
    """The double click's second click lands on the next sketch within a few frames of its showing:
    it must not answer it (stored ratings had response times of 21 to 224 ms)."""
    press_twice_across_two_trials(page, "Fake", page.mouse.click)
    assert stored() == [(1, "fake")]
    grade_button(page, "Real").click()  # an answer given on purpose is taken
    expect(progress(page)).to_have_text(f"3 / {TRIALS}")
    assert stored() == [(1, "fake"), (2, "real")]
    assert Rating.objects.get(position=2).response_ms >= 400


def test_a_double_tap_does_not_answer_the_next_sketch_unseen(open_page, study):
    page = open_page(viewport=PHONE, **TOUCH)
    press_twice_across_two_trials(page, "Possibly real", page.touchscreen.tap)
    assert stored() == [(1, "possibly_real")]


def test_a_press_begun_before_the_buttons_open_does_not_answer(page, study):
    """A finger (or mouse button) already down on the next sketch's button when it opens: letting go
    must not answer."""
    start(page)
    expect(grade_button(page, "Real")).to_be_enabled()
    x, y = centre(page, "Real")
    page.mouse.click(x, y)
    shown = wait_until_shown(page, 2, time.monotonic(), gap_ms=0)
    page.mouse.down()
    skip_if_late(shown)
    page.wait_for_timeout(800)
    expect(grade_button(page, "Real")).to_be_enabled()
    page.mouse.up()
    page.wait_for_timeout(800)
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    assert stored() == [(1, "real")]


def test_a_double_key_press_does_not_answer_the_next_sketch_unseen(page, study):
    start(page)
    expect(grade_button(page, "Real")).to_be_enabled()
    page.keyboard.press("3")
    shown = wait_until_shown(page, 2, time.monotonic())
    page.keyboard.press("1")
    skip_if_late(shown)
    page.wait_for_timeout(1000)
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    assert stored() == [(1, "fake")]
    page.keyboard.press("2")
    expect(progress(page)).to_have_text(f"3 / {TRIALS}")
    assert stored() == [(1, "fake"), (2, "possibly_real")]


def test_a_sketch_that_did_not_show_keeps_the_buttons_closed_and_can_be_tried_again(page, study):
    """Its image missing on the server: nothing can be answered; once it is back, Try again shows it,
    and the answer's time counts from then."""
    start(page)
    first = Participant.objects.get().assignments.get(position=1).stimulus
    png = first.png
    StimulusImage.objects.filter(stimulus=first).delete()
    page.reload()
    expect(page.get_by_text("The sketch did not load.")).to_be_visible()
    for label in ("Real", "Possibly real", "Fake"):
        expect(grade_button(page, label)).to_be_disabled()
    page.keyboard.press("1")
    page.wait_for_timeout(300)
    assert stored() == []

    StimulusImage.objects.create(stimulus=first, png=png)
    page.get_by_role("button", name="Try again").click()
    expect(grade_button(page, "Real")).to_be_enabled()
    expect(page.get_by_text("The sketch did not load.")).to_be_hidden()
    assert page.get_by_role("img", name="sketch").evaluate("sketch => sketch.naturalWidth") == 256
    page.wait_for_timeout(600)
    grade_button(page, "Fake").click()
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    rating = Rating.objects.get()
    assert rating.grade == "fake" and 600 <= rating.response_ms < 60_000


@pytest.mark.parametrize("width, height", [(640, 360), (667, 375), (844, 390), (360, 640), (390, 844)],
                         ids=lambda size: str(size))
def test_on_a_phone_either_way_up_the_sketch_is_large_and_every_button_in_view(open_page, study, width, height):
    """On its side a phone is short: the buttons go beside the sketch rather than under it."""
    page = open_page(viewport={"width": width, "height": height}, **TOUCH)
    start(page)
    expect(grade_button(page, "Real")).to_be_enabled()
    sketch = page.get_by_role("img", name="sketch").bounding_box()
    assert sketch["width"] == sketch["height"] >= min(300, height - 40)
    assert sketch["y"] >= 0 and sketch["y"] + sketch["height"] <= height
    for label in ("Real", "Possibly real", "Fake"):
        box = grade_button(page, label).bounding_box()
        assert box["height"] >= 44, label
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, label
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, label
        overlaps = (box["x"] < sketch["x"] + sketch["width"] and sketch["x"] < box["x"] + box["width"]
                    and box["y"] < sketch["y"] + sketch["height"] and sketch["y"] < box["y"] + box["height"])
        assert not overlaps, label
    assert page.evaluate("document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"trial-{width}x{height}.png")


def test_with_large_text_the_buttons_share_the_width_equally(open_page, study):
    page = open_page(viewport={"width": 360, "height": 640}, **TOUCH)
    start(page)
    page.add_style_tag(content="html { font-size: 150%; }")  # the phone's text size at 150%
    boxes = [grade_button(page, label).bounding_box() for label in ("Real", "Possibly real", "Fake")]
    assert max(box["width"] for box in boxes) - min(box["width"] for box in boxes) <= 1
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= 360 for box in boxes)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_key_hints_show_with_a_keyboard_only(page, open_page, study):
    start(page)
    expect(page.get_by_text("Keys 1, 2 and 3 work too.")).to_be_visible()
    expect(page.locator(".grades kbd").first).to_be_visible()
    phone = open_page(viewport=PHONE, **TOUCH)
    phone.goto("/s/pilot/consent/")
    phone.get_by_role("button", name="I agree to take part").click()
    expect(phone.get_by_text("or with the keys")).to_be_hidden()
    phone.get_by_role("button", name="Start").click()
    expect(grade_button(phone, "Real")).to_be_enabled()
    expect(phone.get_by_text("Keys 1, 2 and 3 work too.")).to_be_hidden()
    for kbd in phone.locator(".grades kbd").all():
        expect(kbd).to_be_hidden()


def test_on_a_touch_screen_a_button_keeps_no_hover_colour(open_page, study):
    """A touch screen has no hover, yet the button last tapped counts as hovered until the next
    tap elsewhere: no hover colour there."""
    page = open_page(viewport=PHONE, **TOUCH)
    page.goto("/s/pilot/")
    link = page.get_by_role("link", name="Continue")
    before = link.evaluate("link => getComputedStyle(link).backgroundColor")
    link.hover()
    assert link.evaluate("link => link.matches(':hover')")
    assert link.evaluate("link => getComputedStyle(link).backgroundColor") == before


def test_the_finish_button_centres_its_lines(page, study):
    study.completion_url = "https://app.prolific.com/submissions/complete?cc=BR0WSER"
    study.save()
    start(page)
    participant = Participant.objects.get()
    for assignment in participant.assignments.all():
        participant.rate(assignment.position, "real", 1000)
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto("/s/pilot/done/")
    finish = page.get_by_role("link", name="Finish and return to the recruitment site")
    assert finish.bounding_box()["height"] > 70  # two lines or more
    assert finish.evaluate("link => getComputedStyle(link).textAlign") == "center"
