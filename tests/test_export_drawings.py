"""export_drawings: accepted drawings out as sketch-rnn files that the project's own loader reads,
so they become real stimuli of a grading study (never shown to the person who drew them) and
training data."""

import json
import math
import random
import re
import shutil
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from generator.data import load_category, load_npz, ndjson_split
from generator.model import Config
from generator.render import sketch_png
from ratings.management.commands.export_drawings import split_of
from ratings.models import Drawing, Participant, Stimulus, Study
from tests.conftest import FIXTURE_DATA_DIR
from tests.participant_steps import consent, draw, start, url

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=10, eval_every=2, max_seq_len=60)


def shape(category, rng):
    """The raw strokes of a wobbly circle, or a square in four strokes, somewhere on the canvas."""
    cx, cy, r = rng.uniform(300, 700), rng.uniform(300, 700), rng.uniform(100, 280)
    if category == "circle":
        n = rng.randint(12, 30)
        xs = [round(cx + r * rng.uniform(.9, 1.1) * math.cos(2 * math.pi * i / (n - 1))) for i in range(n)]
        ys = [round(cy + r * rng.uniform(.9, 1.1) * math.sin(2 * math.pi * i / (n - 1))) for i in range(n)]
        return [[xs, ys, [40 * i for i in range(n)]]]
    corners = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]
    return [[[round(a[0]), round(b[0])], [round(a[1]), round(b[1])], [300 * i, 300 * i + 200]]
            for i, (a, b) in enumerate(zip(corners, corners[1:]))]


def take_part(study, pid, rng):
    """One participant of the drawing study, through the pages: a drawing for each prompt."""
    browser = Client()
    participant = consent(browser, study, PROLIFIC_PID=pid)
    browser.post(url("drawing", study))
    for prompt in participant.prompts.all():
        draw(browser, study, shape(prompt.category, rng), position=prompt.position)
    participant.refresh_from_db()
    assert participant.finished is not None
    return participant


@pytest.fixture
def drawn(make_study):
    """A finished drawing-only study: four people who drew 3 circles and 3 squares each (one of
    dev's squares rejected), and a simulated participant who did the same."""
    study = make_study(slug="collect", real=0, generated=0, temperatures=(), attention=0, items_per_participant=0,
                       drawings_per_participant=6, drawing_categories="circle,square", drawing_seconds=20)
    rng = random.Random(5)
    for pid in ("anna", "ben", "cleo", "dev"):
        take_part(study, pid, rng)
    take_part(study, Participant.SIMULATED_PID_PREFIX + "x", rng)
    off_topic = Drawing.objects.filter(prompt__participant__prolific_pid="dev", prompt__category="square").first()
    off_topic.rejection = Drawing.Rejection.OFF_TOPIC
    off_topic.save()
    return study


def exported(study):
    """The drawings an export must hold: accepted, of real participants."""
    return (Drawing.objects.filter(prompt__participant__study=study, rejection="")
            .exclude(prompt__participant__prolific_pid__startswith=Participant.SIMULATED_PID_PREFIX))


def export(study, out, *args):
    call_command("export_drawings", "--study", study.slug, "--out", str(out), *args)


def test_npz_export_holds_each_accepted_drawing_once_as_the_datasets_stroke3(drawn, tmp_path, capsys):
    export(drawn, tmp_path, "--seed", "3")
    output = capsys.readouterr().out
    assert "Exported 23 accepted drawings of study collect; left out 1 rejected and 6 of simulated participants" in output
    for category in ("circle", "square"):
        splits, keys = load_npz(tmp_path / f"{category}.npz", with_keys=True)
        expected = {d.key_id: d for d in exported(drawn).filter(prompt__category=category)}
        found = [(key, drawing) for split in splits for key, drawing in zip(keys[split], splits[split])]
        assert sorted(key for key, _ in found) == sorted(expected)
        for key, drawing in found:
            assert drawing.dtype == np.int16 and np.abs(drawing[:, :2]).max() <= 255
            np.testing.assert_array_equal(drawing, expected[key].stroke3())
        assert f"{tmp_path / (category + '.npz')}: {len(expected)} drawings (" in output
    assert sum(len(load_npz(tmp_path / "circle.npz")[s]) for s in ("train", "valid", "test")) == 12


def test_the_npz_split_follows_the_seed_and_keeps_each_drawing_where_it_was_as_the_study_grows(drawn, tmp_path):
    def split_of_each(folder):
        splits, keys = load_npz(folder / "circle.npz", with_keys=True)
        return {key: split for split in splits for key in keys[split]}

    for number, drawing in enumerate(Drawing.objects.order_by("pk")):  # keys of their own: the test repeats
        Drawing.objects.filter(pk=drawing.pk).update(key_id=str(10**15 + number))
    export(drawn, tmp_path / "a", "--seed", "3", "--valid-fraction", "0.3", "--test-fraction", "0.3")
    before = split_of_each(tmp_path / "a")
    assert set(before.values()) == {"train", "valid", "test"}
    export(drawn, tmp_path / "b", "--seed", "4", "--valid-fraction", "0.3", "--test-fraction", "0.3")
    assert split_of_each(tmp_path / "b") != before
    take_part(drawn, "erin", random.Random(9))
    export(drawn, tmp_path / "a", "--seed", "3", "--valid-fraction", "0.3", "--test-fraction", "0.3", "--force")
    after = split_of_each(tmp_path / "a")
    assert len(after) == len(before) + 3 and {key: after[key] for key in before} == before


def test_the_split_gives_each_fraction_about_its_share():
    splits = Counter(split_of(str(10**15 + k), 0, 0.2, 0.1) for k in range(10_000))
    assert abs(splits["valid"] / 10_000 - 0.2) < 0.02 and abs(splits["test"] / 10_000 - 0.1) < 0.02
    assert Counter(split_of(str(k), 0, 0, 1) for k in range(100)) == {"test": 100}
    assert Counter(split_of(str(k), 0, 0, 0) for k in range(100)) == {"train": 100}


def test_ndjson_export_is_the_raw_layout_and_loads_to_the_same_drawings_as_npz(drawn, tmp_path, capsys):
    export(drawn, tmp_path / "ndjson", "--format", "ndjson")
    lines = (tmp_path / "ndjson" / "square.ndjson").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    by_key = {d.key_id: d for d in exported(drawn).filter(prompt__category="square")}
    assert sorted(r["key_id"] for r in records) == sorted(by_key)
    for record in records:
        assert list(record) == ["word", "countrycode", "timestamp", "recognized", "key_id", "drawing"]
        drawing = by_key[record["key_id"]]
        assert (record["word"], record["countrycode"], record["recognized"]) == ("square", "", True)
        assert record["drawing"] == drawing.strokes  # raw, as drawn: x, y and t per stroke
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", record["timestamp"])
        assert record["timestamp"].startswith(f"{drawing.created:%Y-%m-%d %H:%M:%S}")
    splits = {s: sum(ndjson_split(k) == s for k in by_key) for s in ("train", "valid", "test")}
    assert f"{len(by_key)} drawings ({splits['train']} train, {splits['valid']} valid, {splits['test']} test)" in \
        capsys.readouterr().out
    export(drawn, tmp_path / "npz")

    def every(category, folder):
        return sorted(d.tobytes() for split in load_category(category, folder).values() for d in split)

    for category in ("circle", "square"):
        assert every(category, tmp_path / "ndjson") == every(category, tmp_path / "npz")
        assert len(every(category, tmp_path / "npz")) == exported(drawn).filter(prompt__category=category).count()


def test_export_load_render_gives_the_admins_thumbnail(drawn, tmp_path, django_user_model):
    export(drawn, tmp_path, "--test-fraction", "1", "--valid-fraction", "0")
    test, keys = load_category("circle", tmp_path, splits=["test"], with_keys=True)
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("r", password="x", is_staff=True, is_superuser=True))
    for key, drawing in zip(keys["test"], test["test"]):
        stored = Drawing.objects.get(key_id=key)
        thumbnail = staff.get(reverse("admin:ratings_drawing_image", args=[stored.pk]))
        assert thumbnail.status_code == 200 and thumbnail.content == sketch_png(drawing)


def test_existing_files_are_kept_and_bad_requests_are_clear_errors(drawn, tmp_path):
    export(drawn, tmp_path)
    before = (tmp_path / "circle.npz").read_bytes()
    with pytest.raises(CommandError, match=r"circle.npz.* exist\(s\) already; pass --force"):
        export(drawn, tmp_path)
    assert (tmp_path / "circle.npz").read_bytes() == before
    with pytest.raises(CommandError, match="holds the same category in the other format"):
        export(drawn, tmp_path, "--format", "ndjson")
    assert not (tmp_path / "circle.ndjson").exists()
    with pytest.raises(CommandError, match="add up to more than 1"):
        export(drawn, tmp_path / "x", "--valid-fraction", "0.6", "--test-fraction", "0.6")
    with pytest.raises(CommandError, match="No study with slug 'nobody'"):
        call_command("export_drawings", "--study", "nobody", "--out", str(tmp_path / "y"))
    (tmp_path / "afile").write_text("")
    with pytest.raises(CommandError, match="is a file, not a folder"):
        export(drawn, tmp_path / "afile")
    with pytest.raises(CommandError, match="invalid fraction value"):
        export(drawn, tmp_path / "z", "--test-fraction", "1.5")


@pytest.fixture(scope="module")
def circle_checkpoint(tmp_path_factory):
    """A tiny model of the fixture circles, trained for two steps: generate_samples needs one."""
    from generator.data import load_sketch_data
    from generator.train import Run

    folder = tmp_path_factory.mktemp("checkpoint")
    data = load_sketch_data(["circle"], FIXTURE_DATA_DIR, max_len=60)
    Run(Config(categories=("circle",), cell="lstm", **TINY), data, folder / "run", "cpu").train(2)
    shutil.copy(folder / "run" / "best.pt", folder / "circle.pt")
    return folder / "circle.pt"


@pytest.mark.parametrize("format", ["npz", "ndjson"])
def test_a_grading_study_built_from_exported_drawings_never_shows_people_their_own(drawn, tmp_path, format,
                                                                                   circle_checkpoint, make_study):
    circles = exported(drawn).filter(prompt__category="circle")
    if format == "ndjson":
        # The loader's split is a hash of key_id alone: give every circle a key of the test split.
        keys = (str(k) for k in range(10**15, 10**16) if ndjson_split(str(k)) == "test")
        for drawing in circles:
            Drawing.objects.filter(pk=drawing.pk).update(key_id=next(keys))
    export(drawn, tmp_path, "--format", format, "--test-fraction", "1", "--valid-fraction", "0")
    call_command("generate_samples", "--study", "grading", "--checkpoint", str(circle_checkpoint), "--categories",
                 "circle", "--real", "12", "--generated", "0", "--data-dir", str(tmp_path))
    grading = Study.objects.get(slug="grading")
    grading.items_per_participant, grading.attention_checks = 20, 0
    grading.save()
    real = grading.stimuli.filter(source=Stimulus.Source.REAL)
    assert sorted(real.values_list("dataset_key", flat=True)) == sorted(circles.values_list("key_id", flat=True))
    for stimulus in real:
        drawing = Drawing.objects.get(key_id=stimulus.dataset_key)
        assert stimulus.png == sketch_png(drawing.stroke3())
    for pid, own in (("anna", 3), ("ben", 3), ("dev", 3), ("someone-new", 0)):
        drawn_by_them = set(circles.filter(prompt__participant__prolific_pid=pid).values_list("key_id", flat=True))
        assert len(drawn_by_them) == own
        participant = start(Client(), grading, PROLIFIC_PID=pid)
        shown = set(participant.assignments.values_list("stimulus__dataset_key", flat=True))
        assert not shown & drawn_by_them
        assert len(shown) == 12 - len(drawn_by_them)  # everyone else's drawings are shown


def test_train_sketch_rnn_trains_on_exported_drawings(drawn, tmp_path, capsys):
    export(drawn, tmp_path / "data", "--valid-fraction", "0.2", "--test-fraction", "0.2", "--seed", "1")
    splits = load_npz(tmp_path / "data" / "square.npz")
    sizes = ["--set", "enc_size=16", "--set", "dec_size=24", "--set", "z_size=8", "--set", "num_mixture=3",
             "--set", "batch_size=4"]
    call_command("train_sketch_rnn", "--categories", "square", "--steps", "4", "--eval-every", "2", "--cell", "lstm",
                 "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data"), *sizes)
    assert f"Training square ({len(splits['train'])} train / {len(splits['valid'])} valid drawings" in \
        capsys.readouterr().out
    assert (tmp_path / "run" / "best.pt").exists()
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(metrics) >= 2
