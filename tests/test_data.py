import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

from generator.data import (
    BucketBatcher,
    SketchDataError,
    clamp_and_filter,
    drop_points,
    load_category,
    load_ndjson,
    load_npz,
    load_sketch_data,
    mirror,
    padding_fraction,
    random_scale,
    save_npz,
    scale_factor,
    stroke5_batch,
)
from generator.strokes import simplify_stroke3


def write_npz(path, **splits):
    arrays = {}
    for name, drawings in splits.items():
        array = np.empty(len(drawings), dtype=object)
        for i, d in enumerate(drawings):
            array[i] = d
        arrays[name] = array
    np.savez(path, **arrays)
    return path


GOOD = np.array([[1, 2, 0], [3, 4, 1]], dtype=np.int16)


def test_loads_fixture_file(fixture_data_dir):
    splits = load_npz(fixture_data_dir / "circle.npz")
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "valid": 12, "test": 12}
    assert all(d.dtype == np.int16 and d.shape[1] == 3 for d in splits["train"])


def test_loads_real_quickdraw_file(real_data_dir):
    # The official file (70 000 / 2500 / 2500) or the 2000 / 250 / 250 cut the committed models used.
    splits = load_npz(real_data_dir / "pig.npz")
    assert set(splits) == {"train", "valid", "test"} and len(splits["train"]) >= 2000
    assert len(splits["valid"]) == len(splits["test"]) >= 250
    assert all(d.dtype == np.int16 and d.shape[1] == 3 for d in splits["test"])


@pytest.mark.parametrize("drawing, problem", [
    (np.array([[1, 2], [3, 4]], dtype=np.int16), "shape"),
    (np.array([[1, 2, 0], [3, 4, 2]], dtype=np.int16), "pen bits"),
    (np.array([[1, 2, 0], [3, 4, 0]], dtype=np.int16), "does not lift the pen"),
    (np.array([[1, np.nan, 0], [3, 4, 1]]), "NaN"),
    (np.zeros((0, 3), dtype=np.int16), "empty"),
])
def test_bad_drawings_are_named(tmp_path, drawing, problem):
    path = write_npz(tmp_path / "bad.npz", train=[GOOD, drawing], valid=[GOOD], test=[GOOD])
    with pytest.raises(SketchDataError, match=f"bad.npz: drawing 1 of split 'train' .*{problem}"):
        load_npz(path)


def test_missing_file(tmp_path):
    with pytest.raises(SketchDataError, match="no such file"):
        load_npz(tmp_path / "nothing.npz")


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(SketchDataError, match="text.npz: not a readable npz"):
        load_npz(path)


def test_missing_split(tmp_path):
    path = write_npz(tmp_path / "two.npz", train=[GOOD], valid=[GOOD])
    with pytest.raises(SketchDataError, match="missing split.*test"):
        load_npz(path)


def test_truncated_file(tmp_path, fixture_data_dir):
    data = (fixture_data_dir / "circle.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SketchDataError, match="cut.npz"):
        load_npz(path)


def test_truncated_member_inside_a_valid_zip(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.arange(100, dtype=np.int16))
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"{split}.npy", buffer.getvalue()[:-50])
    with pytest.raises(SketchDataError, match="short.npz: split 'train' cannot be read"):
        load_npz(tmp_path / "short.npz")


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    header = np.lib.format.header_data_from_array_1_0(np.empty(1, dtype=object))
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    pickle.dump(Exploit(), member, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"{split}.npy", member.getvalue())
    refused = f"refused to load {os.system.__module__}.system: only numpy arrays are allowed"  # posix on Linux
    with pytest.raises(SketchDataError, match=re.escape(f"evil.npz: split 'train' cannot be read (UnpicklingError: {refused})")):
        load_npz(tmp_path / "evil.npz")
    assert not marker.exists()


def test_object_array_holding_a_non_array_is_rejected(tmp_path):
    # Unpickling plain lists needs no globals, so it loads; validation must catch it.
    array = np.empty(1, dtype=object)
    array[0] = [[1, 2, 1]]
    path = write_npz(tmp_path / "lists.npz", train=[GOOD], valid=[GOOD], test=array)
    with pytest.raises(SketchDataError, match="drawing 0 of split 'test' is a list"):
        load_npz(path)


def test_saved_npz_loads_back_with_the_key_of_each_drawing(tmp_path):
    other = np.array([[5, 6, 0], [7, 8, 1]])
    drawings = {"train": [GOOD, other], "valid": [], "test": [GOOD[1:]]}  # two of one length stay two drawings
    keys = {"train": ["101", "102"], "valid": [], "test": ["7"]}
    with open(tmp_path / "k.npz", "wb") as file:
        save_npz(file, drawings, keys)
    splits, loaded_keys = load_npz(tmp_path / "k.npz", with_keys=True)
    assert loaded_keys == keys
    for split in drawings:
        assert [d.tolist() for d in splits[split]] == [np.asarray(d, dtype=np.int16).tolist() for d in drawings[split]]
    with open(tmp_path / "plain.npz", "wb") as file:
        save_npz(file, drawings)
    assert load_npz(tmp_path / "plain.npz", with_keys=True)[1] == {"train": [None, None], "valid": [], "test": [None]}


def test_key_ids_that_do_not_name_every_drawing_are_refused(tmp_path):
    path = tmp_path / "bad-keys.npz"
    write_npz(path, train=[], valid=[], test=[GOOD])
    with zipfile.ZipFile(path, "a") as archive, archive.open("test_key_id.npy", "w") as member:
        np.save(member, np.array(["1", "2"]))
    with pytest.raises(SketchDataError, match="'test_key_id' is not one string per drawing of split 'test'"):
        load_npz(path, with_keys=True)


def test_ndjson_simplified_and_raw(tmp_path):
    path = tmp_path / "d.ndjson"
    path.write_text(
        '{"word": "x", "drawing": [[[0, 10, 20], [0, 0, 0]], [[20, 20], [0, 10]]]}\n'
        '{"word": "x", "drawing": [[[0, 500, 1000], [0, 0, 500], [0, 10, 20]]]}\n'
    )
    simplified, raw = load_ndjson(path)
    np.testing.assert_array_equal(simplified, [[10, 0, 0], [10, 0, 1], [0, 0, 0], [0, 10, 1]])
    # Raw: scaled so the largest extent is 255, resampled, RDP'd: the corner survives.
    np.testing.assert_array_equal(raw, [[128, 0, 0], [127, 128, 1]])


def test_ndjson_bad_line_names_the_line(tmp_path):
    path = tmp_path / "d.ndjson"
    path.write_text('{"drawing": [[[0, 1], [0, 1]]]}\nnot json\n')
    with pytest.raises(SketchDataError, match="line 2"):
        load_ndjson(path)


def test_scale_factor_is_std_of_pooled_offsets():
    drawings = [np.array([[3, -3, 0], [1, -1, 1]], dtype=np.float32), np.array([[0, 0, 1]], dtype=np.float32)]
    # Offsets pooled: 3, -3, 1, -1, 0, 0 -> mean 0, variance (9 + 9 + 1 + 1) / 6.
    assert scale_factor(drawings) == pytest.approx(np.sqrt(20 / 6))


def test_fixture_scale_factor_applied_to_all_splits(fixture_data_dir):
    data = load_sketch_data(["circle", "square"], fixture_data_dir)
    raw = load_npz(fixture_data_dir / "circle.npz")["train"] + load_npz(fixture_data_dir / "square.npz")["train"]
    expected = np.std(np.concatenate([d[:, :2].ravel() for d in raw]).astype(np.float64))
    assert data.scale_factor == pytest.approx(expected, rel=1e-6)
    first_test = load_npz(fixture_data_dir / "circle.npz")["test"][0]
    np.testing.assert_allclose(data.splits["test"][0][:, :2], first_test[:, :2] / expected, rtol=1e-5)
    assert data.n_max == max(len(d) for s in data.splits.values() for d in s)
    assert list(data.labels["train"]).count(1) == 60


def test_given_scale_factor_is_reused_unchanged(fixture_data_dir):
    data = load_sketch_data(["circle"], fixture_data_dir, factor=2.0)
    assert data.scale_factor == 2.0


def test_simplified_loading_keeps_every_drawing_at_its_index_with_fewer_points(fixture_data_dir):
    raw = load_npz(fixture_data_dir / "circle.npz")
    splits = load_category("circle", fixture_data_dir, simplify_epsilon=2.0)
    for split, drawings in raw.items():
        assert [simplify_stroke3(d, 2.0).tolist() for d in drawings] == [d.tolist() for d in splits[split]]
    assert sum(map(len, splits["train"])) < 0.8 * sum(map(len, raw["train"]))
    data = load_sketch_data(["circle"], fixture_data_dir, simplify_epsilon=2.0)
    assert data.scale_factor == pytest.approx(scale_factor([d.astype(np.float32) for d in splits["train"]]))
    assert [len(d) for d in data.splits["test"]] == [len(d) for d in splits["test"]]


def test_clamp_and_filter():
    long = np.ones((300, 3), dtype=np.int16)
    wild = np.array([[5000, -5000, 0], [1, 1, 1]], dtype=np.int16)
    kept = clamp_and_filter([long, wild], max_len=250)
    assert len(kept) == 1
    np.testing.assert_array_equal(kept[0][0], [1000, -1000, 0])


def test_random_scale_stays_in_range():
    rng = np.random.default_rng(0)
    drawing = np.array([[10, 10, 0], [10, 10, 1]], dtype=np.float32)
    for _ in range(100):
        scaled = random_scale(drawing, rng, 0.15)
        assert np.all((scaled[:, :2] >= 8.5) & (scaled[:, :2] <= 11.5))
        np.testing.assert_array_equal(scaled[:, 2], drawing[:, 2])


def test_mirror_negates_x_only_and_draws_nothing_when_off():
    drawing = np.array([[3, 4, 0], [-1, 2, 1]], dtype=np.float32)
    rng = np.random.default_rng(0)
    mirrored = [not np.array_equal(mirror(drawing, rng, 0.5), drawing) for _ in range(200)]
    assert 60 < sum(mirrored) < 140
    np.testing.assert_array_equal(mirror(drawing, rng, 1.0), [[-3, 4, 0], [1, 2, 1]])
    np.testing.assert_array_equal(drawing, [[3, 4, 0], [-1, 2, 1]])  # the input is left as it was
    state = rng.bit_generator.state
    assert mirror(drawing, rng, 0.0) is drawing
    assert rng.bit_generator.state == state  # off: the augmentation stream is untouched


def test_drop_points_keeps_endpoints_and_total_displacement():
    rng = np.random.default_rng(0)
    drawing = np.column_stack([np.ones(40), np.arange(40) % 3, np.zeros(40)]).astype(np.float32)
    drawing[19, 2] = drawing[39, 2] = 1
    dropped = drop_points(drawing, rng, prob=0.5)
    assert len(dropped) < len(drawing)
    np.testing.assert_allclose(dropped[:, :2].sum(axis=0), drawing[:, :2].sum(axis=0))
    assert dropped[:, 2].sum() == 2 and dropped[-1, 2] == 1
    # Every kept point lies where an original point lay: dropping merges offsets, it never
    # invents positions. The first rows of a stroke are never dropped or merged into.
    original = {tuple(p) for p in np.cumsum(drawing[:, :2], axis=0)}
    assert {tuple(p) for p in np.cumsum(dropped[:, :2], axis=0)} <= original
    np.testing.assert_array_equal(dropped[:2], drawing[:2])


def test_drop_points_with_zero_probability_is_identity():
    drawing = np.column_stack([np.ones(10), np.ones(10), np.r_[np.zeros(9), 1]]).astype(np.float32)
    assert drop_points(drawing, np.random.default_rng(0), prob=0.0) is drawing


def test_stroke5_batch_pads_to_longest_plus_one_with_start_token():
    a = np.array([[1, 1, 1]], dtype=np.float32)
    b = np.array([[2, 2, 0], [3, 3, 1]], dtype=np.float32)
    batch, lengths = stroke5_batch([a, b])
    assert batch.shape == (2, 4, 5)
    np.testing.assert_array_equal(batch[:, 0], [[0, 0, 1, 0, 0]] * 2)
    np.testing.assert_array_equal(batch[0, 1:], [[1, 1, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(batch[1, 1:], [[2, 2, 1, 0, 0], [3, 3, 0, 1, 0], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(lengths, [1, 2])


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(10, 150, size=2000)
    fractions = {}
    for bucketed in (False, True):
        batcher = BucketBatcher(lengths, 100, seed=0, bucketed=bucketed)
        batches = [lengths[batcher.next()] for _ in range(20)]
        fractions[bucketed] = padding_fraction(batches, [b.max() + 1 for b in batches])
    assert fractions[True] < 0.1 < 0.3 < fractions[False]


def test_batcher_visits_every_drawing_once_per_epoch():
    batcher = BucketBatcher(np.arange(1000) % 97, 100, seed=3)
    seen = np.concatenate([batcher.next() for _ in range(10)])
    assert sorted(seen) == list(range(1000))


def test_batcher_state_restores_the_same_batches():
    lengths = np.arange(500) % 50
    batcher = BucketBatcher(lengths, 100, seed=1)
    for _ in range(7):  # into the second epoch
        batcher.next()
    state = batcher.state()
    expected = [batcher.next() for _ in range(6)]
    resumed = BucketBatcher(lengths, 100, seed=1)
    resumed.restore(state)
    for want in expected:
        np.testing.assert_array_equal(resumed.next(), want)
