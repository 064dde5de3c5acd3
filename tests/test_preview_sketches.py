import io

import pytest
from django.core.management import CommandError, call_command
from PIL import Image


def test_grid_of_real_drawings(fixture_data_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    call_command("preview_sketches", "--category", "circle", "--count", "10", "--columns", "5",
                 "--out", str(out), "--data-dir", str(fixture_data_dir))
    assert "wrote 10 sketches" in capsys.readouterr().out
    assert Image.open(io.BytesIO(out.read_bytes())).size[0] == 5 * 128


def test_unknown_category_is_a_clear_error(fixture_data_dir, tmp_path):
    with pytest.raises(CommandError, match="no data for category 'unicorn'.*fetch_sketches"):
        call_command("preview_sketches", "--category", "unicorn", "--out", str(tmp_path / "x.png"),
                     "--data-dir", str(fixture_data_dir))


def test_needs_a_category_or_a_checkpoint(tmp_path):
    with pytest.raises(CommandError, match="one of the arguments --category --checkpoint is required"):
        call_command("preview_sketches", "--out", str(tmp_path / "x.png"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CommandError, match="no such checkpoint"):
        call_command("preview_sketches", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.png"))
