"""The quick start's main command: `python manage.py demo` on the committed demo checkpoints."""

import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.test import Client

from generator.checkpoint import load_checkpoint
from ratings.management.commands import demo
from ratings.models import Stimulus, Study

from .test_generate_samples import checkpoints  # noqa: F401 (tiny trained checkpoints, a fixture)

COMMITTED_CHECKPOINTS = Path(settings.DEMO_CHECKPOINT_DIR)


def run_demo():
    out = StringIO()
    call_command("demo", "--no-server", stdout=out)
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_makes_the_study_from_the_committed_checkpoints(real_data_dir, settings):
    settings.QUICKDRAW_DATA_DIR = real_data_dir
    text = run_demo()

    study = Study.objects.get(slug="demo")
    categories = sorted({c for path in COMMITTED_CHECKPOINTS.glob("*.pt")
                         for c in load_checkpoint(path)["config"]["categories"]})
    stimuli = study.stimuli.exclude(source=Stimulus.Source.ATTENTION)
    assert stimuli.filter(source="real").count() == 40
    assert stimuli.filter(source="generated").count() == 40
    assert sorted(set(stimuli.values_list("category", flat=True))) == categories
    assert all(png.startswith(b"\x89PNG") for png in stimuli.values_list("image__png", flat=True))

    participant_url = f"http://127.0.0.1:8000{study.get_absolute_url()}"
    assert f"Participants: {participant_url}" in text
    assert "Researcher:   http://127.0.0.1:8000/researcher/demo/" in text
    password = text.split("with password ")[1].split()[0]
    client = Client()
    assert client.login(request=HttpRequest(), username="researcher", password=password)  # django-axes wants one
    assert client.get("/researcher/demo/").status_code == 200
    assert Client().get(study.get_absolute_url()).status_code == 200
    assert (settings.STATIC_ROOT / "admin" / "css" / "base.css").is_file()  # the admin has its styles
    assert "--delete" in text

    # Run again (a second `make demo`): nothing is sampled or added and no second password is made.
    again = run_demo()
    assert study.stimuli.count() == Stimulus.objects.count()
    assert stimuli.count() == 80
    assert "with password" not in again
    assert "The demo study is made already (40 real and 40 generated sketches)" in again
    assert "Contact sheet" not in again  # generate_samples did not run


@pytest.mark.django_db(transaction=True)
def test_demo_makes_a_study_of_another_folders_checkpoints(checkpoints, fixture_data_dir, settings, tmp_path,
                                                             monkeypatch):
    settings.QUICKDRAW_DATA_DIR = fixture_data_dir
    monkeypatch.setattr(demo, "PER_CATEGORY", 5)  # the fixture files hold 12 test drawings per category
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("circle.pt", "square.pt"):
        shutil.copy(checkpoints / name, folder / name)

    out = StringIO()
    call_command("demo", "--no-server", "--checkpoints", str(folder), "--study", "shapes", stdout=out)
    study = Study.objects.get(slug="shapes")
    assert not Study.objects.filter(slug="demo").exists()
    for category in ("circle", "square"):
        for source in ("real", "generated"):
            assert study.stimuli.filter(category=category, source=source).count() == 5
    assert "Researcher:   http://127.0.0.1:8000/researcher/shapes/" in out.getvalue()

    again = StringIO()
    call_command("demo", "--no-server", "--checkpoints", str(folder), "--study", "shapes", "--addr", "0.0.0.0:9000",
                 stdout=again)
    assert "The shapes study is made already (10 real and 10 generated sketches)" in again.getvalue()
    # Served on every address: the links are the ones a browser on this machine opens.
    assert "Researcher:   http://localhost:9000/researcher/shapes/" in again.getvalue()
    assert study.stimuli.exclude(source=Stimulus.Source.ATTENTION).count() == 20


@pytest.mark.django_db
def test_demo_without_checkpoints_says_where_it_looked(settings, tmp_path):
    settings.DEMO_CHECKPOINT_DIR = tmp_path
    with pytest.raises(CommandError, match=f"no demo checkpoints in {tmp_path}"):
        run_demo()


@pytest.mark.parametrize("variables, address", [((), "127.0.0.1:8000"), (("PORT=8001",), "127.0.0.1:8001"),
                                                (("ADDR=0.0.0.0:9000",), "0.0.0.0:9000")])
def test_make_demo_serves_where_it_is_told(variables, address):
    commands = subprocess.run(["make", "-n", "demo", *variables], cwd=settings.BASE_DIR, capture_output=True,
                              text=True, check=True).stdout
    assert f"manage.py demo --addr {address}" in commands


@pytest.mark.parametrize("addr, shown", [("127.0.0.1:8000", "127.0.0.1:8000"), ("0.0.0.0:9000", "localhost:9000"),
                                         ("[::]:9000", "localhost:9000"), ("0:9000", "localhost:9000"),
                                         ("8001", "127.0.0.1:8001"),
                                         ("study.example.org:80", "study.example.org:80")])
def test_the_demo_links_name_an_address_a_browser_opens(addr, shown):
    assert demo.browser_address(addr) == shown
