"""The data search path: several folders of category files (.npz or .ndjson), the scale rule
that brings them to one scale, and held-out splits that never reach a training batch."""

import json
import zlib

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from generator.data import (SketchDataError, available_categories, data_folders, load_category, load_ndjson_splits,
                            load_sketch_data)


def write_npz(path, **splits):
    arrays = {}
    for name, drawings in splits.items():
        array = np.empty(len(drawings), dtype=object)
        for i, d in enumerate(drawings):
            array[i] = np.asarray(d, dtype=np.int16)
        arrays[name] = array
    np.savez(path, **arrays)
    return path


def drawing(rng, direction=1, size=10, points=12):
    """A zig-zag stroke whose x offsets all have the sign of `direction`."""
    d = np.zeros((points, 3), dtype=np.int16)
    d[:, 0] = direction * rng.integers(1, size + 1, points)
    d[:, 1] = rng.integers(-size, size + 1, points)
    d[-1, 2] = 1
    return d


def category(rng, train=20, held_out=5, size=10):
    """Training drawings go right, valid and test drawings go left: a held-out drawing is recognisable
    in any batch, whatever augmentation did to it (scaling and merged points keep the sign)."""
    return {"train": [drawing(rng, 1, size) for _ in range(train)],
            "valid": [drawing(rng, -1, size) for _ in range(held_out)],
            "test": [drawing(rng, -1, size) for _ in range(held_out)]}


@pytest.fixture
def two_folders(tmp_path):
    """Folder `a` holds pig at one scale; folder `b` holds pig at twice that scale, and duck."""
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    pig_a = category(rng, train=30)
    write_npz(a / "pig.npz", **pig_a)
    pig_b = {split: [d * np.array([2, 2, 1], dtype=np.int16) for d in drawings]
             for split, drawings in category(rng, train=10).items()}
    write_npz(b / "pig.npz", **pig_b)
    write_npz(b / "duck.npz", **category(rng))
    return a, b, pig_a, pig_b


def path_of(*folders):
    return ":".join(str(f) for f in folders)


def test_a_category_in_several_folders_trains_on_the_training_drawings_of_all(two_folders):
    a, b, _, _ = two_folders
    data = load_sketch_data(["pig"], path_of(a, b))
    assert {s: len(d) for s, d in data.splits.items()} == {"train": 40, "valid": 10, "test": 10}
    assert [(f["file"], f["train"], f["valid"], f["test"]) for f in data.files] == [
        ("a/pig.npz", 30, 5, 5), ("b/pig.npz", 10, 5, 5)]


def test_each_folder_is_rescaled_to_the_offset_scale_of_the_first(two_folders):
    a, b, pig_a, pig_b = two_folders
    own_std = {name: np.std(np.concatenate([d[:, :2].ravel() for d in pig["train"]]).astype(np.float64))
               for name, pig in (("a", pig_a), ("b", pig_b))}
    data = load_sketch_data(["pig"], path_of(a, b))
    assert [f["rescale"] for f in data.files] == pytest.approx([1.0, own_std["a"] / own_std["b"]])
    # b's drawings come out at a's scale: b's first test drawing, times the rule, over the model's factor.
    expected = pig_b["test"][0][:, :2] * (own_std["a"] / own_std["b"]) / data.scale_factor
    np.testing.assert_allclose(data.splits["test"][5][:, :2], expected, rtol=1e-5)
    # Reversed, the path takes b's scale: the first folder sets it.
    reversed_data = load_sketch_data(["pig"], path_of(b, a))
    assert [f["rescale"] for f in reversed_data.files] == pytest.approx([1.0, own_std["b"] / own_std["a"]])
    assert reversed_data.scale_factor == pytest.approx(2 * data.scale_factor, rel=0.1)


def test_one_folder_is_read_as_it_is(two_folders):
    a, _, pig_a, _ = two_folders
    data = load_sketch_data(["pig"], str(a))
    assert [f["rescale"] for f in data.files] == [1.0]
    np.testing.assert_allclose(data.splits["test"][0][:, :2] * data.scale_factor, pig_a["test"][0][:, :2], rtol=1e-5)


def test_a_trained_models_categories_set_the_scale_when_one_category_is_read(two_folders):
    """A model of pig and duck saw b at the scale of b's pig and duck together; reading its pig test
    drawings alone (to encode them, say) must bring b to that same scale."""
    a, b, _, _ = two_folders
    both = load_sketch_data(["pig", "duck"], path_of(a, b))
    pig_test = load_category("pig", path_of(a, b), splits=["test"], scale_categories=["pig", "duck"])["test"]
    np.testing.assert_allclose(pig_test[5][:, :2] / both.scale_factor, both.splits["test"][5][:, :2], rtol=1e-5)
    alone = load_category("pig", path_of(a, b), splits=["test"])["test"]
    assert not np.allclose(alone[5][:, :2], pig_test[5][:, :2])


def test_a_category_missing_from_every_folder_names_them_all(two_folders):
    a, b, _, _ = two_folders
    with pytest.raises(SketchDataError) as error:
        load_sketch_data(["zebra"], path_of(a, b))
    assert f"no zebra.npz or zebra.ndjson in {a}, {b}" in str(error.value)


def test_a_folder_on_the_path_that_does_not_exist_is_a_clear_error(two_folders, tmp_path):
    a, _, _, _ = two_folders
    with pytest.raises(SketchDataError, match=f"data folder {tmp_path / 'nowhere'} does not exist"):
        load_sketch_data(["pig"], path_of(a, tmp_path / "nowhere"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("train_sketch_rnn", "--categories", "pig", "--steps", "1", "--out", str(tmp_path / "run"),
                     "--data-dir", path_of(a, tmp_path / "nowhere"))
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_folder_with_both_an_npz_and_an_ndjson_file_of_a_category_is_refused(two_folders):
    a, _, _, _ = two_folders
    (a / "pig.ndjson").write_text("")
    with pytest.raises(SketchDataError, match="holds both pig.npz and pig.ndjson"):
        load_category("pig", str(a))


def test_all_categories_of_the_path(two_folders):
    a, b, _, _ = two_folders
    assert available_categories(data_folders(path_of(a, b))) == ["duck", "pig"]


def ndjson_line(key_id, strokes):
    return json.dumps({"word": "cat", "countrycode": "", "timestamp": "", "recognized": True, "key_id": key_id,
                       "drawing": strokes})


def test_ndjson_files_load_like_npz_files_split_by_key_id(tmp_path):
    # Simplified format: per stroke [[xs], [ys]].
    strokes = [[[0, 10, 10], [0, 0, 5]], [[20, 25], [5, 5]]]
    lines = [ndjson_line(str(1000 + k), strokes) for k in range(60)]
    (tmp_path / "cat.ndjson").write_text("\n".join(lines) + "\n")
    splits = load_ndjson_splits(tmp_path / "cat.ndjson")
    bucket = {str(1000 + k): zlib.crc32(str(1000 + k).encode()) % 10 for k in range(60)}
    assert len(splits["train"]) == sum(b < 8 for b in bucket.values())
    assert len(splits["valid"]) == sum(b == 8 for b in bucket.values())
    assert len(splits["test"]) == sum(b == 9 for b in bucket.values())
    # Points (0,0) (10,0) (10,5) | (20,5) (25,5): offsets from the first point, pen lifted at each stroke's end.
    np.testing.assert_array_equal(splits["train"][0], [[10, 0, 0], [0, 5, 1], [10, 0, 0], [5, 0, 1]])
    data = load_sketch_data(["cat"], str(tmp_path))
    assert data.files[0]["file"].endswith("cat.ndjson") and len(data.splits["train"]) == len(splits["train"])


def test_an_ndjson_drawing_keeps_its_split_when_the_file_grows(tmp_path):
    strokes = [[[0, 10], [0, 3]]]
    path = tmp_path / "cat.ndjson"
    path.write_text("\n".join(ndjson_line(str(k), [[[0, k + 1], [0, 0]]]) for k in range(30)) + "\n")
    before = {s: [int(d[0, 0]) for d in ds] for s, ds in load_ndjson_splits(path).items()}
    with open(path, "a") as f:
        f.write("\n".join(ndjson_line(str(100 + k), strokes) for k in range(30)) + "\n")
    after = {s: [int(d[0, 0]) for d in ds] for s, ds in load_ndjson_splits(path).items()}
    for split in before:
        assert after[split][:len(before[split])] == before[split]


def test_a_raw_ndjson_drawing_is_simplified_as_the_dataset_documents(tmp_path):
    # Raw format: [[xs], [ys], [ts]]; a straight line of many points becomes its two ends.
    xs = list(range(0, 101))
    raw = [[xs, [0] * len(xs), list(range(len(xs)))]]
    (tmp_path / "line.ndjson").write_text(ndjson_line("1", raw) + "\n")
    (drawing,) = [d for ds in load_ndjson_splits(tmp_path / "line.ndjson").values() for d in ds]
    np.testing.assert_array_equal(drawing, [[255, 0, 1]])


def test_a_broken_ndjson_line_is_a_clear_error(tmp_path):
    (tmp_path / "cat.ndjson").write_text(ndjson_line("1", [[[0, 1], [0, 1]]]) + "\n{not json\n")
    with pytest.raises(SketchDataError, match="cat.ndjson: line 2 is not a Quick, Draw! drawing"):
        load_category("cat", str(tmp_path))


def test_no_valid_or_test_drawing_reaches_a_training_batch(two_folders, tmp_path, monkeypatch):
    import generator.train

    a, b, _, _ = two_folders
    seen = []
    augment = generator.train.augment

    def recording_augment(drawing, rng, config):
        seen.append(drawing)
        return augment(drawing, rng, config)

    monkeypatch.setattr(generator.train, "augment", recording_augment)
    call_command("train_sketch_rnn", "--categories", "pig,duck", "--steps", "6", "--eval-every", "3",
                 "--out", str(tmp_path / "run"), "--data-dir", path_of(a, b), "--threads", "1",
                 "--set", "batch_size=10", "--set", "enc_size=8", "--set", "dec_size=8", "--set", "z_size=4",
                 "--set", "num_mixture=2")
    assert len(seen) == 60
    assert all((d[:, 0] > 0).all() for d in seen), "a held-out drawing (going left) reached a training batch"
