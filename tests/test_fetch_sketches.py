import http.server
import shutil
import threading

import pytest
from django.core.management import CommandError, call_command

from generator.data import load_npz


@pytest.fixture
def sketch_server(fixture_data_dir, tmp_path):
    """A local HTTP server standing in for the Quick, Draw! bucket; counts requests."""
    root = tmp_path / "bucket"
    root.mkdir()
    shutil.copy(fixture_data_dir / "circle.npz", root / "circle.npz")
    (root / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/{{category}}.npz", requests
    server.shutdown()


def test_downloads_validates_and_skips_present_files(sketch_server, settings, tmp_path, capsys):
    url, requests = sketch_server
    settings.QUICKDRAW_URL = url
    data_dir = tmp_path / "data"
    call_command("fetch_sketches", "--categories", "circle", "--data-dir", str(data_dir))
    assert "circle: downloaded" in capsys.readouterr().out
    assert len(load_npz(data_dir / "circle.npz")["train"]) == 60
    assert [p.name for p in data_dir.iterdir()] == ["circle.npz"]  # no temporary file left

    call_command("fetch_sketches", "--categories", "circle", "--data-dir", str(data_dir))
    assert "circle: already present" in capsys.readouterr().out
    assert len(requests) == 1


def test_a_damaged_local_copy_is_replaced(sketch_server, settings, tmp_path):
    settings.QUICKDRAW_URL = sketch_server[0]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "circle.npz").write_bytes(b"half a file")
    call_command("fetch_sketches", "--categories", "circle", "--data-dir", str(data_dir))
    assert len(load_npz(data_dir / "circle.npz")["test"]) == 12


def test_an_invalid_download_never_takes_the_final_name(sketch_server, settings, tmp_path, capsys):
    settings.QUICKDRAW_URL = sketch_server[0]
    data_dir = tmp_path / "data"
    with pytest.raises(CommandError, match="1 category could not be fetched"):
        call_command("fetch_sketches", "--categories", "broken", "--data-dir", str(data_dir))
    err = capsys.readouterr().err
    assert "broken.npz did not give a valid sketch file (not a readable npz" in err
    assert f"{data_dir / 'broken.npz'} was not written" in err and ".part" not in err  # names no deleted temp file
    assert list(data_dir.iterdir()) == []


def test_missing_category_on_the_server(sketch_server, settings, tmp_path, capsys):
    settings.QUICKDRAW_URL = sketch_server[0]
    with pytest.raises(CommandError):
        call_command("fetch_sketches", "--categories", "unicorn", "--data-dir", str(tmp_path))
    assert "could not download unicorn.npz" in capsys.readouterr().err


def test_offline_error_names_file_url_and_setting(settings, tmp_path, capsys):
    settings.QUICKDRAW_URL = "http://127.0.0.1:9/{category}.npz"  # nothing listens on the discard port
    with pytest.raises(CommandError):
        call_command("fetch_sketches", "--categories", "pig", "--data-dir", str(tmp_path))
    err = capsys.readouterr().err
    assert "pig.npz" in err and "http://127.0.0.1:9/pig.npz" in err and "QUICKDRAW_DATA_DIR" in err


def test_empty_category_list_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="at least one category"):
        call_command("fetch_sketches", "--categories", ",", "--data-dir", str(tmp_path))
