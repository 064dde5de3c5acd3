"""Fixtures every test shares: isolated output folders, the fixture data, studies built through the real renderer."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DATA_DIR = ROOT / "fixtures" / "quickdraw"


@pytest.fixture(autouse=True)
def isolated_outputs(settings, tmp_path):
    """Every test writes reports and collected static files into its own temporary folder."""
    settings.REPORTS_DIR = tmp_path / "reports"
    settings.STATIC_ROOT = tmp_path / "static"
    settings.QUICKDRAW_DATA_DIR = FIXTURE_DATA_DIR
    return tmp_path


@pytest.fixture
def fixture_data_dir():
    """The project's own small sketch files (synthetic circles and squares)."""
    return FIXTURE_DATA_DIR


@pytest.fixture
def real_data_dir():
    """The first folder of QUICKDRAW_DATA_DIR (a search path), or else of its default folder (where
    `make demo` downloads them), that holds the official pig.npz; the test is skipped without one."""
    path = os.environ.get("QUICKDRAW_DATA_DIR") or str(ROOT / ".cache" / "quickdraw")
    for folder in map(Path, path.split(os.pathsep)):
        if (folder / "pig.npz").exists():
            return folder
    pytest.skip("needs real Quick, Draw! data: set QUICKDRAW_DATA_DIR to a folder with pig.npz")


@pytest.fixture
def make_study(db):
    """Build a study with real, generated and attention stimuli and their PNGs.

    make_study(slug="demo", categories=("circle", "square"), real=4, generated=4,
               temperatures=(0.5,), attention=2, **study_fields) -> Study
    `real` and `generated` are per category (generated: per condition too).
    """
    from tests.factories import build_study

    return build_study


@pytest.fixture
def study(make_study):
    """The small study the participant-page tests share: 4 sketches and 1 attention check each."""
    return make_study(slug="pilot", items_per_participant=4, attention=1)


@pytest.fixture
def participant(client, study):
    """A participant of `study` who consented and started, in `client`'s session."""
    from tests.participant_steps import start

    return start(client, study)


@pytest.fixture
def rated_study(make_study):
    """A study six participants rated by hand (tests/results_data.py): every figure is known."""
    from tests.results_data import build_rated_study

    return build_rated_study(make_study)


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The tests' models are tiny: one thread is faster than two fighting over small matmuls."""
    import torch

    torch.set_num_threads(1)
