"""The drawing task in Chromium, driven by Playwright against the live server: drawings made with the
mouse at a desktop size and with touch events at a phone size are stored as drawn, Clear starts
over, and the time limit sends what is on the canvas."""

import re

import pytest
from playwright.sync_api import expect

from ratings.drawing import CANVAS_UNITS, Drawing
from ratings.models import Participant
from tests.test_browser import ARTIFACTS, PHONE, TOUCH, browser, open_page  # noqa: F401  (shared fixtures)
from tests.test_browser import pytestmark  # noqa: F401  (browser mark; skipped without Chromium)

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def study(transactional_db, make_study):
    return make_study(slug="draw", real=0, generated=0, temperatures=(), attention=0, items_per_participant=0,
                      drawings_per_participant=2, drawing_categories="circle,square", drawing_seconds=0,
                      completion_code="DR4WN")


def begin(page, pid):
    page.goto(f"/s/draw/?PROLIFIC_PID={pid}")
    page.get_by_role("link", name="Continue").click()
    page.get_by_role("button", name="I agree to take part").click()
    page.get_by_role("button", name="Start drawing").click()
    expect(page.get_by_text("1 / 2")).to_be_visible()


class Mouse:
    def __init__(self, page):
        self.page = page

    def stroke(self, points):
        mouse = self.page.mouse
        mouse.move(*points[0])
        mouse.down()
        for point in points[1:]:
            mouse.move(*point)
        mouse.up()


class Touch:
    """A finger on the touch screen, through the browser's own input events (Playwright's touchscreen
    only taps)."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)

    def stroke(self, points):
        for kind, (x, y) in [("touchStart", points[0]), *(("touchMove", p) for p in points[1:])]:
            self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        self.cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def strokes_on(canvas, relative_strokes):
    """Screen points of strokes given as fractions of the canvas, and the canvas units the page must
    record for them."""
    box = canvas.bounding_box()
    screen = [[(round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"])) for fx, fy in stroke]
              for stroke in relative_strokes]
    units = [[(round((x - box["x"]) * CANVAS_UNITS / box["width"]), round((y - box["y"]) * CANVAS_UNITS / box["height"]))
              for x, y in stroke] for stroke in screen]
    return screen, units


def assert_drawn(drawing, expected_units):
    """The stored raw strokes are the points drawn (within a unit of rounding), with times from 0 that
    never go back."""
    assert len(drawing.strokes) == len(expected_units)
    for (xs, ys, ts), points in zip(drawing.strokes, expected_units):
        assert len(xs) == len(points)
        for x, y, (ex, ey) in zip(xs, ys, points):
            assert abs(x - ex) <= 1 and abs(y - ey) <= 1, (x, y, ex, ey)
    times = [t for _, _, ts in drawing.strokes for t in ts]
    assert times[0] == 0 and times == sorted(times) and times[-1] < 60_000


ARROW = [[(.2, .2), (.3, .3), (.4, .4), (.5, .5), (.6, .6), (.7, .7), (.8, .8)],
         [(.8, .5), (.8, .65), (.8, .8), (.65, .8), (.5, .8)]]
ZIGZAG = [[(.1, .5), (.25, .3), (.4, .7), (.55, .3), (.7, .7), (.85, .3)]]


@pytest.mark.parametrize("size, device", [(DESKTOP, "mouse"), (PHONE, "touch")], ids=["desktop-mouse", "phone-touch"])
def test_a_drawing_is_stored_as_drawn(open_page, study, size, device):
    page = open_page(viewport=size, **(TOUCH if device == "touch" else {}))
    begin(page, f"{device}1")
    canvas = page.locator("#canvas")
    hand = Mouse(page) if device == "mouse" else Touch(page)
    assert_fits(page, size, f"draw-{size['width']}x{size['height']}")
    expect(page.get_by_role("button", name="Done")).to_be_disabled()

    page.evaluate("""window.pointerTypes = [];
        document.getElementById("canvas").addEventListener("pointerdown", e => pointerTypes.push(e.pointerType));""")
    screen, arrow = strokes_on(canvas, ARROW)
    for stroke in screen:
        hand.stroke(stroke)
    assert page.evaluate("pointerTypes") == [device, device]  # the page saw a mouse, or a finger
    page.screenshot(path=ARTIFACTS / f"drawn-{size['width']}x{size['height']}-{device}.png")
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_text("2 / 2")).to_be_visible()

    screen, scrap = strokes_on(canvas, ZIGZAG)
    hand.stroke(screen[0])
    page.get_by_role("button", name="Clear").click()  # start over: only what follows is sent
    expect(page.get_by_role("button", name="Done")).to_be_disabled()
    screen, zigzag = strokes_on(canvas, [list(reversed(ZIGZAG[0]))])
    hand.stroke(screen[0])
    page.get_by_role("button", name="Done").click()

    expect(page.get_by_text("DR4WN")).to_be_visible()
    drawings = list(Drawing.objects.filter(prompt__participant__prolific_pid=f"{device}1").order_by("prompt__position"))
    assert_drawn(drawings[0], arrow)
    assert_drawn(drawings[1], zigzag)
    assert all(d.accepted for d in drawings)
    assert Participant.objects.get().finished is not None


def assert_fits(page, size, name):
    """The prompt, the whole canvas and both buttons in view, nothing to scroll."""
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] == canvas["height"] >= min(300, size["height"] - 60)
    for box in (canvas, page.get_by_role("heading").bounding_box(), page.get_by_role("button", name="Clear").bounding_box(),
                page.get_by_role("button", name="Done").bounding_box()):
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size["width"]
        assert box["y"] + box["height"] <= size["height"]
    assert page.evaluate("document.documentElement.scrollHeight <= innerHeight")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def test_on_a_phone_on_its_side_the_canvas_and_buttons_fit(open_page, study):
    size = {"width": PHONE["height"], "height": PHONE["width"]}
    page = open_page(viewport=size, **TOUCH)
    begin(page, "sideways1")
    assert_fits(page, size, f"draw-{size['width']}x{size['height']}")


def test_the_time_limit_shows_and_sends_what_is_drawn(open_page, study):
    # Long enough for a busy machine to put the finger down before the clock runs out.
    study.drawing_seconds = 8
    study.save()
    page = open_page(viewport=PHONE, **TOUCH)
    begin(page, "timed1")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^[1-8] s$"))  # counting down from 8
    screen, drawn = strokes_on(page.locator("#canvas"), [ZIGZAG[0]])
    Touch(page).stroke(screen[0])
    expect(page.get_by_text("2 / 2")).to_be_visible()  # sent by the clock, not by Done
    expect(page.get_by_role("timer")).to_have_class(re.compile(r"\blow\b"))  # the last seconds stand out
    expect(page.get_by_text("DR4WN")).to_be_visible()  # nothing drawn: the empty canvas is sent too
    first, second = Drawing.objects.order_by("prompt__position")
    assert_drawn(first, drawn)
    assert first.accepted and second.rejection == Drawing.Rejection.EMPTY
