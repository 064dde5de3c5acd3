"""Whole participant sessions in Chromium, driven by Playwright against the live server: with the
mouse and with the keyboard alone, on a phone-sized screen."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from ratings.models import Participant
from tests.conftest import ROOT

# Playwright's sync API runs an event loop in this thread; Django refuses database calls from a
# thread with a running loop unless told they are safe, which they are here (no async code).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
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


def test_the_buttons_wait_for_the_sketch_and_the_time_starts_when_it_is_shown(page, study):
    start(page)
    held = []
    page.route("**/i/*.png", lambda route: held.append(route))  # the sketch's download waits until we let it go
    page.reload(wait_until="domcontentloaded")
    while not held:
        page.wait_for_timeout(50)
    for label in ("Real", "Possibly real", "Fake"):
        expect(grade_button(page, label)).to_be_disabled()
    page.keyboard.press("1")
    page.wait_for_timeout(300)
    assert not Participant.objects.get().ratings.exists()

    held[0].continue_()
    expect(grade_button(page, "Real")).to_be_enabled()
    page.wait_for_timeout(600)
    grade_button(page, "Fake").click()
    expect(progress(page)).to_have_text(f"2 / {TRIALS}")
    rating = Participant.objects.get().ratings.get()
    assert rating.grade == "fake" and 600 <= rating.response_ms < 60_000


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
