"""The researcher's pages in Chromium at a laptop's 1280x800 and a phone's 390x844: the home page, the
study list and the results page of a ten-category study fit the screen's width (tables scroll in
their own box, charts shrink to the page), with screenshots kept in test-artifacts/."""

import pytest
from playwright.sync_api import expect

from tests.factories import TEN_CATEGORIES, build_ten_category_study
from tests.test_browser import ARTIFACTS, PHONE, browser, open_page  # noqa: F401  (shared fixtures)
from tests.test_browser import pytestmark  # noqa: F401  (browser mark; skipped without Chromium)

LAPTOP = {"width": 1280, "height": 800}
SIZES = pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280x800", "390x844"])
PASSWORD = "a long test password"


@pytest.fixture
def researcher(transactional_db, django_user_model):
    return django_user_model.objects.create_user("researcher", password=PASSWORD, is_staff=True)


def log_in(page):
    page.goto("/admin/login/?next=/")
    page.get_by_label("Username").fill("researcher")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Studies")).to_be_visible()


def fits_the_width(page):
    """The page does not scroll sideways: everything wider than the screen scrolls in its own box."""
    return page.evaluate("document.documentElement.scrollWidth") == page.evaluate("innerWidth")


def screenshot(page, name, viewport):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}-{viewport['width']}x{viewport['height']}.png", full_page=True)


@SIZES
def test_a_visitor_gets_the_neutral_home_page(open_page, transactional_db, make_study, viewport):
    make_study(slug="secret-pilot")
    page = open_page(viewport=viewport)
    page.goto("/")
    expect(page.get_by_role("heading", name="Sketchlab")).to_be_visible()
    expect(page.get_by_text("secret-pilot")).to_have_count(0)
    assert fits_the_width(page)
    screenshot(page, "home", viewport)


@SIZES
def test_a_researcher_gets_the_study_list(open_page, researcher, make_study, viewport):
    make_study(slug="pilot", title="A pilot with a long title that has to wrap on a phone")
    make_study(slug="main", is_open=False)
    page = open_page(viewport=viewport)
    log_in(page)
    for slug in ("pilot", "main"):
        expect(page.locator("code", has_text=slug).first).to_be_visible()
    expect(page.get_by_role("link", name="Results")).to_have_count(2)
    assert fits_the_width(page)
    screenshot(page, "studies", viewport)
    page.get_by_role("link", name="Results").first.click()
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()


@SIZES
def test_the_results_of_ten_categories_fit_the_screen(open_page, researcher, viewport):
    build_ten_category_study(slug="ten")
    page = open_page(viewport=viewport)
    log_in(page)
    page.goto("/researcher/ten/")
    expect(page.get_by_role("heading", name="Ten categories")).to_be_visible()
    assert fits_the_width(page)
    tables = page.locator(".table-box")
    assert tables.count() >= 6  # progress, exclusions, four grade-share tables, stimuli
    for box in tables.all():
        assert box.bounding_box()["width"] <= viewport["width"]
    by_category = page.get_by_role("region", name="By category")
    for category in TEN_CATEGORIES:
        expect(by_category.get_by_role("cell", name=category, exact=True)).to_have_count(2)  # real and generated
    charts = page.locator(".charts img")
    assert charts.count() == 3  # by source, by source and category, by condition
    main_width = page.locator("main").bounding_box()["width"]
    for chart in charts.all():
        box = chart.bounding_box()
        assert box["x"] >= 0 and box["width"] <= main_width
    if viewport == LAPTOP:
        # At a laptop's width no grade-share table needs to scroll.
        for title in ("By source", "By category", "Generated, by condition"):
            assert page.get_by_role("region", name=title).evaluate("box => box.scrollWidth <= box.clientWidth"), title
    screenshot(page, "results-ten-categories", viewport)
