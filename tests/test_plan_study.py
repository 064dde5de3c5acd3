"""plan_study: the participants a study needs for its headline's interval, before it runs or from a pilot."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ratings.stats.planning import Assumptions, Design, plan


def plan_text(*args):
    out = StringIO()
    call_command("plan_study", *args, stdout=out)
    return out.getvalue()


def test_a_plan_from_stated_assumptions():
    text = plan_text("--half-width", "10", "--sketches", "40", "--real", "40", "--items", "20", "--cells", "2",
                     "--share", "70", "--rater-sd", "0.5", "--sketch-sd", "0.8", "--replicates", "4")
    expected = plan(Design(sketches=40, per_participant=10, cells=2), Assumptions(0.7, 0.5, 0.8), 0.1, replicates=4)
    assert text.startswith("Plan for a 95% interval of ±10 points on the headline")
    assert "design: 40 generated sketches in 2 cells (category x condition); each participant grades 10 of them" in text
    assert "assumed: share 70.0%, spread of raters 0.50 and of sketches 0.80" in text
    assert f"About {expected.participants} counted participants" in text
    assert f"  {expected.participants:12d}  {expected.half_width * 100:.1f}" in text.splitlines()


def test_a_plan_like_a_pilot_study(rated_study):
    """The pilot's design (4 generated of 8 sketches; 40 items each, capped at the 4) and its measured share."""
    text = plan_text("--like", "rated", "--half-width", "20", "--replicates", "4")
    assert "design: 4 generated sketches in 2 cells (category x condition); each participant grades 4 of them" in text
    assert "assumed: share 56.2%" in text
    assert "measured from study rated: 4 counted participants, 16 ratings of generated sketches" in text


def test_stated_options_override_the_pilots(rated_study):
    text = plan_text("--like", "rated", "--share", "80", "--half-width", "20", "--replicates", "4")
    assert "assumed: share 80.0%" in text


@pytest.mark.parametrize("args, message", [
    (["--share", "0"], "argument --share: invalid percent value: '0'"),
    (["--half-width", "100"], "argument --half-width: invalid percent value: '100'"),
    (["--sketches", "1"], "a plan needs at least 2 generated sketches"),
    (["--sketches", "10", "--cells", "20"], "10 generated sketches cannot fill 20 cells"),
])
def test_impossible_plans_say_why(args, message, db):
    with pytest.raises(CommandError, match=message):
        plan_text(*args)


def test_a_pilot_that_is_not_there(make_study):
    make_study(slug="pilot", generated=0)
    with pytest.raises(CommandError, match="No study with slug 'nope'; the studies are: pilot"):
        plan_text("--like", "nope")
    with pytest.raises(CommandError, match="Study 'pilot' has no generated sketches to plan by"):
        plan_text("--like", "pilot")
