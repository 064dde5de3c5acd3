"""simulate_participants: dry runs through the participant pages, and their removal."""

import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ratings.management.commands.simulate_participants import Command
from ratings.models import Assignment, Participant, Rating, StimulusImage
from ratings.simulation import POLICIES
from tests.conftest import ROOT
from tests.participant_steps import answer, start


def simulate(*args, study="pilot"):
    out = StringIO()
    call_command("simulate_participants", "--study", study, *args, stdout=out)
    return out.getvalue()


def grades_by_source():
    return {(r.stimulus.source, r.grade) for r in Rating.objects.select_related("stimulus")}


def test_oracle_participants_finish_with_the_true_grades(study):
    text = simulate("--n", "3", "--policy", "oracle")
    assert "Simulated 3 participants on study pilot through Django's test client (policy oracle, seed 0)" in text
    assert "Finished: 3 of 3" in text
    assert "Ratings stored: 15 (attention checks among them: 3)" in text
    assert "Attention checks passed: 3 of 3" in text
    assert grades_by_source() == {("real", "real"), ("generated", "fake"), ("attention", "fake")}
    for participant in Participant.objects.all():
        assert participant.finished is not None and participant.consented is not None
        assert participant.prolific_pid.startswith("SIMULATED-") and participant.external_study_id == "SIMULATED"
        assert participant.external_session_id
        assert [r.position for r in participant.ratings.all()] == [1, 2, 3, 4, 5]
    assert all(500 <= ms <= 5000 for ms in Rating.objects.values_list("response_ms", flat=True))


def test_always_real_participants_still_pass_the_attention_checks(study):
    text = simulate("--n", "2", "--policy", "always-real")
    assert "Attention checks passed: 2 of 2" in text
    assert grades_by_source() == {("real", "real"), ("generated", "real"), ("attention", "fake")}


def test_random_grades_follow_the_seed(study, make_study):
    simulate("--n", "2", "--seed", "7")
    first = list(Rating.objects.order_by("participant", "position").values_list("grade", "response_ms"))
    Rating.objects.all().delete()
    simulate("--n", "2", "--seed", "7")
    assert list(Rating.objects.order_by("participant", "position").values_list("grade", "response_ms")) == first
    assert {grade for grade, _ in first} == {"real", "possibly_real", "fake"}
    Rating.objects.all().delete()
    simulate("--n", "2", "--seed", "8")
    assert list(Rating.objects.order_by("participant", "position").values_list("grade", "response_ms")) != first


def test_random_is_the_default_policy(study):
    assert "(policy random, seed 0)" in simulate("--n", "1")


def test_the_test_client_works_whatever_the_allowed_hosts(study, settings):
    settings.ALLOWED_HOSTS = [".study.example.org"]
    assert "Finished: 1 of 1" in simulate("--n", "1")


def test_a_running_server_at_url(study, live_server):
    text = simulate("--n", "2", "--policy", "oracle", "--url", live_server.url + "/")
    assert f"through {live_server.url} (policy oracle" in text
    assert "Finished: 2 of 2" in text and "Ratings stored: 10" in text
    assert Rating.objects.count() == 10


def test_an_unreachable_url_is_a_clear_error(study):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(CommandError, match=rf"Could not reach http://127.0.0.1:{port}: .*refused"):
        simulate("--n", "1", "--url", f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host", "http://host/s/pilot/"])
def test_url_must_be_a_sites_root(study, url):
    with pytest.raises(CommandError, match="invalid root_url value"):
        simulate("--n", "1", "--url", url)


def test_a_failing_step_names_the_participant_and_the_page(study):
    StimulusImage.objects.filter(stimulus__study=study).delete()
    with pytest.raises(CommandError, match=r"^Participant 1 of 2: Sketch 1 did not show: its page carries no image$"):
        simulate("--n", "2")


def test_an_unknown_study(study):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        call_command("simulate_participants", "--study", "nope", "--n", "1")


def test_a_closed_study(study):
    study.is_open = False
    study.save()
    with pytest.raises(CommandError, match="Study pilot is closed"):
        simulate("--n", "1")
    assert not Participant.objects.exists()


def test_a_study_without_stimuli(make_study):
    make_study(slug="pilot", real=0, generated=0, attention=0)
    with pytest.raises(CommandError, match="has no stimuli yet; make them with generate_samples"):
        simulate("--n", "1")


def test_delete_removes_the_studys_simulated_participants_and_nobody_else(study, make_study, client):
    make_study(slug="other", items_per_participant=4, attention=1)
    simulate("--n", "2", "--policy", "oracle")
    simulate("--n", "1", study="other")
    start(client, study, PROLIFIC_PID="5f3a9c")
    answer(client, study)

    text = simulate("--delete")
    assert text == "Deleted 2 simulated participants of study pilot and their 10 ratings.\n"
    assert list(Participant.objects.filter(study=study).values_list("prolific_pid", flat=True)) == ["5f3a9c"]
    assert Rating.objects.filter(participant__study=study).count() == 1
    assert Assignment.objects.filter(participant__study=study).count() == 5
    assert Participant.objects.get(study__slug="other").prolific_pid.startswith("SIMULATED-")
    assert simulate("--delete") == "Deleted 0 simulated participants of study pilot and their 0 ratings.\n"


def test_delete_works_on_a_closed_study(study):
    simulate("--n", "1")
    study.is_open = False
    study.save()
    assert "Deleted 1 simulated participants" in simulate("--delete")
    assert not Participant.objects.exists()


def test_delete_needs_a_known_study(study):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        simulate("--delete", study="nope")


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "argument --n: invalid positive value: '0'"),
    (["--n", "x"], "argument --n: invalid positive value: 'x'"),
    (["--n", "1", "--policy", "lazy"], "argument --policy: invalid choice: 'lazy'"),
    ([], "one of the arguments --n --delete is required"),
    (["--n", "1", "--delete"], "argument --delete: not allowed with argument --n"),
])
def test_bad_arguments(study, args, message):
    with pytest.raises(CommandError, match=message):
        simulate(*args)
    assert not Participant.objects.exists()


def test_help_explains_every_option_and_every_policy():
    parser = Command().create_parser("manage.py", "simulate_participants")
    options = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    unexplained = [action.option_strings[0] for action in options if not (action.help or "").strip()]
    assert len(options) > 10 and unexplained == []  # Django's own options included
    policy = next(action for action in options if action.dest == "policy")
    assert sorted(policy.choices) == sorted(POLICIES)
    assert all(f"{name} (" in policy.help for name in POLICIES)  # each policy is said what it does


def test_the_command_does_not_import_torch():
    code = ("import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'studysite.settings'; django.setup(); "
            "import ratings.management.commands.simulate_participants; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_participants_of_a_study_with_a_drawing_task_draw_first(make_study):
    from ratings.drawing import Drawing

    make_study(slug="drawing", items_per_participant=4, attention=1, drawings_per_participant=2,
               drawing_categories="circle,square", drawing_seconds=3)
    text = simulate("--n", "2", "--policy", "oracle", study="drawing")
    assert "Finished: 2 of 2" in text and "Ratings stored: 10" in text
    assert "Drawings stored: 4 (export_drawings leaves them out)" in text
    drawings = Drawing.objects.all()
    assert len(drawings) == 4 and all(d.accepted and 1500 <= d.duration_ms <= 3000 for d in drawings)
    make_study(slug="only-drawing", real=0, generated=0, temperatures=(), attention=0, items_per_participant=0,
               drawings_per_participant=1, drawing_categories="circle", drawing_seconds=0)
    text = simulate("--n", "1", study="only-drawing")
    assert "Finished: 1 of 1" in text and "Ratings stored: 0" in text and "Drawings stored: 1" in text
