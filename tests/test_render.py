"""The one renderer: the same bytes for the same drawing, nothing in them but the drawing; contact sheets."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from generator.data import load_npz
from generator.render import CANVAS, CAPTION_SIZE, TITLE_SIZE, contact_sheet, sketch_png


def png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        chunks.append(data[i + 4:i + 8].decode())
        i += 12 + length
    return chunks


@pytest.fixture
def drawings(fixture_data_dir):
    return load_npz(fixture_data_dir / "square.npz")["test"]


def test_png_has_fixed_size_mode_and_only_critical_chunks(drawings):
    for drawing in [drawings[0], drawings[0].astype(np.float32) * [0.37, 0.37, 1.0], np.zeros((0, 3))]:
        data = sketch_png(drawing)
        image = Image.open(io.BytesIO(data))
        assert image.size == (CANVAS, CANVAS)
        assert image.mode == "L"
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]


def test_same_input_gives_same_bytes(drawings):
    assert sketch_png(drawings[1]) == sketch_png(drawings[1].copy())


def test_drawing_is_scaled_and_centred_whatever_its_units(drawings):
    # A generated sketch comes back as float offsets in data units; a real one as int16. The
    # same shape in either form, at any scale, renders to the same pixels (up to rounding of
    # the coordinates' last digit).
    pixels = np.asarray(Image.open(io.BytesIO(sketch_png(drawings[2]))), dtype=int)
    scaled = np.asarray(Image.open(io.BytesIO(sketch_png(drawings[2].astype(np.float32) * [4.0, 4.0, 1.0]))), dtype=int)
    assert np.abs(pixels - scaled).mean() < 0.05
    ink = np.argwhere(pixels < 128)
    low, high = ink.min(axis=0), ink.max(axis=0)
    assert abs((low + high) / 2 - CANVAS / 2).max() <= 2  # centred
    assert (high - low).max() >= CANVAS - 2 * 16 - 4  # fills the canvas inside the margin
    assert low.min() >= 16 - 3 and high.max() <= CANVAS - 16 + 3


def test_points_are_rounded_to_whole_data_units(drawings):
    """A sample's points fall between the data's whole units; moved onto them, it renders as a
    drawing of those whole units does, so the grid of real drawings gives no source away."""
    drawing = drawings[3]
    assert np.issubdtype(drawing.dtype, np.integer)
    points = np.cumsum(drawing[:, :2], axis=0)
    off_grid = points + np.random.default_rng(0).uniform(-0.45, 0.45, points.shape)
    sample = np.column_stack([np.diff(off_grid, axis=0, prepend=0), drawing[:, 2]]).astype(np.float32)
    assert sketch_png(sample) == sketch_png(drawing)


def test_blank_drawing_is_a_white_canvas():
    pixels = np.asarray(Image.open(io.BytesIO(sketch_png(np.zeros((0, 3))))))
    assert pixels.min() == 255


def test_contact_sheet_holds_every_image(drawings):
    image = Image.open(io.BytesIO(contact_sheet([sketch_png(d) for d in drawings[:10]], columns=4, cell=64)))
    assert image.size == (4 * 64, 3 * 64)


def test_contact_sheet_captions_every_cell_and_makes_room_for_its_title(drawings):
    title = "a title much wider than the two cells of this sheet"
    png = contact_sheet([sketch_png(d) for d in drawings[:2]], columns=2, cell=64, captions=["pig\nid-1", "pig\nid-2"],
                        title=title)
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    heading = TITLE_SIZE + 10
    caption_height = 2 * (CAPTION_SIZE + 2) + 3
    assert pixels.shape == (heading + 64 + caption_height, pixels.shape[1]) and pixels.shape[1] > 2 * 64
    assert (pixels[:heading, 2 * 64:] < 128).any()  # the title runs on past the cells, in dark letters
    for column in range(2):
        for line in range(2):  # each of the caption's two lines is written
            top = heading + 64 + 1 + line * (CAPTION_SIZE + 2)
            assert (pixels[top:top + CAPTION_SIZE, column * 64 + 4:(column + 1) * 64 - 4] < 160).any()

