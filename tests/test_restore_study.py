"""restore_study refuses, writing nothing, what it cannot rebuild whole: a damaged archive, a file
that is no archive, a study the database holds already. (Round trips: tests/test_archive_study.py.)"""

import zipfile
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ratings.models import Participant, Stimulus, Study
from tests.test_archive_study import archive, empty_the_database


def restore(path):
    call_command("restore_study", str(path), stdout=StringIO())


def test_a_damaged_archive_is_refused_and_writes_nothing(rated_study, tmp_path):
    good, damaged = tmp_path / "good.zip", tmp_path / "damaged.zip"
    archive("rated", good)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as copy:
        for name in source.namelist():
            data = source.read(name)
            copy.writestr(name, data.replace(b"pid-A", b"pid-Z") if name == "data.json" else data)
    empty_the_database()
    with pytest.raises(CommandError, match=r"damaged\.zip is damaged: data\.json do\(es\) not match the manifest"):
        restore(damaged)
    assert not Study.objects.exists() and not Participant.objects.exists() and not Stimulus.objects.exists()


def test_a_file_that_is_no_archive_is_refused(db, tmp_path):
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(CommandError, match="is not a readable zip file"):
        restore(not_a_zip)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive_file:
        archive_file.writestr("a.txt", "a")
    with pytest.raises(CommandError, match="has no readable manifest.json: not a study archive"):
        restore(other_zip)


def test_a_study_the_database_holds_already_is_refused(rated_study, tmp_path):
    archive("rated", tmp_path / "rated.zip")
    participants = Participant.objects.count()
    with pytest.raises(CommandError, match="has a study 'rated' already"):
        restore(tmp_path / "rated.zip")
    assert Participant.objects.count() == participants
