import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from generator.strokes import (
    lines_to_stroke3,
    raw_to_stroke3,
    ndjson_to_lines,
    rdp,
    resample_polyline,
    simplify_raw_lines,
    simplify_stroke3,
    stroke3_to_lines,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
)


@st.composite
def stroke3_drawings(draw, max_points=60):
    n = draw(st.integers(1, max_points))
    offsets = draw(arrays(np.int16, (n, 2), elements=st.integers(-300, 300)))
    pen = draw(arrays(np.int16, (n,), elements=st.integers(0, 1)))
    pen[-1] = 1
    return np.column_stack([offsets, pen]).astype(np.int16)


@given(stroke3_drawings(), st.integers(0, 20))
def test_stroke3_stroke5_round_trip(drawing, extra):
    stroke5 = stroke3_to_stroke5(drawing, len(drawing) + extra)
    assert stroke5.shape == (len(drawing) + extra, 5)
    np.testing.assert_array_equal(stroke5_to_stroke3(stroke5), drawing)


@given(stroke3_drawings())
def test_stroke3_lines_round_trip(drawing):
    lines = stroke3_to_lines(drawing)
    assert len(lines) == int(drawing[:, 2].sum())
    np.testing.assert_array_equal(lines_to_stroke3(lines), drawing)


@given(st.lists(arrays(np.int64, st.tuples(st.integers(2, 12), st.just(2)), elements=st.integers(0, 255)),
                min_size=1, max_size=6))
@settings(max_examples=50)
def test_lines_stroke3_round_trip_keeps_shape_up_to_translation(lines):
    back = stroke3_to_lines(lines_to_stroke3(lines))
    origin = lines[0][0]
    assert len(back) == len(lines)
    for original, recovered in zip(lines, back):
        np.testing.assert_array_equal(recovered, original - origin)


@given(stroke3_drawings(), st.floats(0.5, 50))
def test_simplify_stroke3_keeps_every_stroke_and_its_ends_and_only_drops_points(drawing, epsilon):
    simplified = simplify_stroke3(drawing, epsilon)
    before, after = stroke3_to_lines(drawing), stroke3_to_lines(simplified)
    assert len(after) == len(before) and len(simplified) <= len(drawing)
    for original, kept in zip(before, after):
        np.testing.assert_array_equal(kept[[0, -1]], original[[0, -1]])
        remaining = iter(map(tuple, original))  # the kept points are original points, in their order
        assert all(point in remaining for point in map(tuple, kept))


def test_stroke5_rows_of_a_known_drawing():
    # Two strokes: a step right then down (pen lifted), a jump, then one step up-left.
    drawing = np.array([[5, 0, 0], [0, 5, 1], [10, 10, 0], [-3, -4, 1]])
    expected = np.array([
        [5, 0, 1, 0, 0],
        [0, 5, 0, 1, 0],
        [10, 10, 1, 0, 0],
        [-3, -4, 0, 1, 0],  # the last real point lifts the pen (p2); it is not the end (p3)
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
    ], dtype=np.float32)
    np.testing.assert_array_equal(stroke3_to_stroke5(drawing, 6), expected)


def test_stroke5_to_stroke3_cuts_at_first_end_and_lifts_the_pen_when_cut_short():
    rows = np.array([[1, 1, 1, 0, 0], [2, 2, 1, 0, 0], [0, 0, 0, 0, 1], [9, 9, 1, 0, 0]])
    np.testing.assert_array_equal(stroke5_to_stroke3(rows), [[1, 1, 0], [2, 2, 1]])


def test_lines_of_a_known_drawing():
    drawing = np.array([[5, 0, 0], [0, 5, 1], [10, 10, 0], [-3, -4, 1]])
    lines = stroke3_to_lines(drawing)
    np.testing.assert_array_equal(lines[0], [[0, 0], [5, 0], [5, 5]])
    np.testing.assert_array_equal(lines[1], [[15, 15], [12, 11]])


def test_ndjson_simplified_drawing_drops_the_absolute_start():
    drawing = [[[10, 20, 30], [5, 5, 15]], [[40, 42], [50, 52]]]
    stroke3 = lines_to_stroke3(ndjson_to_lines(drawing))
    np.testing.assert_array_equal(stroke3, [[10, 0, 0], [10, 10, 1], [10, 35, 0], [2, 2, 1]])


def test_rdp_removes_points_within_epsilon_and_keeps_corners():
    line = np.array([[0, 0], [5, 0.5], [10, 0], [10, 10]], dtype=float)
    np.testing.assert_array_equal(rdp(line, 2.0), [[0, 0], [10, 0], [10, 10]])
    np.testing.assert_array_equal(rdp(line, 0.1), line)


def test_simplify_stroke3_simplifies_each_stroke_and_keeps_its_ends():
    # Stroke 1: (0,0) -> (4,1) -> (8,0) -> (8,8), a bend of 1 unit then a corner; stroke 2: a dot.
    drawing = np.array([[4, 1, 0], [4, -1, 0], [0, 8, 1], [5, 5, 1]], dtype=np.int16)
    simplified = simplify_stroke3(drawing, 2.0)
    np.testing.assert_array_equal(simplified, [[8, 0, 0], [0, 8, 1], [5, 5, 1]])
    assert simplified.dtype == np.int16
    np.testing.assert_array_equal(stroke3_to_lines(simplified)[-1], stroke3_to_lines(drawing)[-1])
    np.testing.assert_array_equal(simplify_stroke3(drawing, 0.5), drawing)


def test_resample_polyline_spaces_points_one_unit_apart():
    points = resample_polyline(np.array([[0, 0], [3, 4]], dtype=float), 1.0)
    assert len(points) == 6
    np.testing.assert_allclose(np.hypot(*np.diff(points, axis=0).T), 1.0)


def test_simplify_raw_lines_aligns_scales_and_simplifies():
    # A raw straight line from (100, 100) to (600, 350) with many collinear points.
    xs = np.linspace(100, 600, 50)
    ys = np.linspace(100, 350, 50)
    lines = simplify_raw_lines([np.stack([xs, ys], axis=1)])
    assert len(lines) == 1
    np.testing.assert_array_equal(lines[0], [[0, 0], [255, 128]])  # aligned to 0, max 255, RDP to two points


def test_raw_drawings_become_the_datasets_stroke3():
    """Worked by hand: align to 0, scale the larger side to 255, resample at 1 px, RDP with
    epsilon 2, round, then offsets with the pen lifted at each stroke's end."""
    # Two strokes of a 500 x 500 drawing whose top left is (100, 500): a level line drawn in three
    # points, then a line straight down; scale 255 / 500.
    two_lines = [[[100, 350, 600], [500, 500, 500], [0, 50, 100]], [[600, 600], [500, 1000], [300, 400]]]
    np.testing.assert_array_equal(raw_to_stroke3(two_lines), [[255, 0, 1], [0, 0, 0], [0, 255, 1]])
    # One stroke with a corner: down 200, then right 200, scaled to 255 each; the corner stays.
    corner = [[[40, 40, 240], [10, 210, 210], [0, 500, 900]]]
    np.testing.assert_array_equal(raw_to_stroke3(corner), [[0, 255, 0], [255, 0, 1]])
    # A bump of 1.5 px after scaling (1 of 170 raw units, scale 1.5) is within epsilon 2 and goes;
    # a bump of 3 px stays.
    flat = [[[0, 85, 170], [0, 1, 0], [0, 10, 20]]]
    np.testing.assert_array_equal(raw_to_stroke3(flat), [[255, 0, 1]])
    assert len(raw_to_stroke3([[[0, 85, 170], [0, 2, 0], [0, 10, 20]]])) == 2
    assert raw_to_stroke3([]).shape == (0, 3)
