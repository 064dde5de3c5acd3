"""generator.files.atomic_write: a file is replaced whole or not at all, and nothing is left aside."""

import pytest

from generator.files import atomic_write


def test_the_new_file_takes_the_name_whole(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with atomic_write(path) as temporary:
        temporary.write_text("new")
        assert path.read_text() == "old"  # nobody sees the new file before it is whole
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_failed_write_leaves_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed midway")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_exclusive_keeps_the_first_file(tmp_path):
    path = tmp_path / "key"
    with atomic_write(path, exclusive=True) as temporary:
        temporary.write_text("first")
    with pytest.raises(FileExistsError), atomic_write(path, exclusive=True) as temporary:
        temporary.write_text("second")
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_the_file_gets_the_permissions_asked_for(tmp_path):
    with atomic_write(tmp_path / "secret", permissions=0o600) as temporary:
        temporary.write_text("x")
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
