"""The one renderer: stroke-3 -> SVG -> PNG. Real and generated sketches go through exactly this
code, so an image says nothing about where its drawing came from: same canvas, margin, stroke,
scaling and centring, a white background, no text, and no metadata chunks in the PNG. Contact
sheets for researchers are grids of these very images.
"""

import io
from pathlib import Path

import cairosvg
import cairosvg.parser
import cairosvg.surface
import numpy as np
from PIL import Image

from .strokes import stroke3_to_lines

CANVAS = 256  # pixels, square
MARGIN = 16  # pixels around the drawing
STROKE_WIDTH = 3.0  # pixels, the same whatever the drawing's size
STROKE_COLOUR = "#000000"


def fit_lines(lines, size=CANVAS, margin=MARGIN):
    """Scale the polylines uniformly to fit size - 2 * margin and centre them on the canvas."""
    if not lines:
        return []
    points = np.concatenate(lines)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = (high - low).max()
    scale = (size - 2 * margin) / extent if extent > 0 else 1.0
    centre = (low + high) / 2
    return [(line - centre) * scale + size / 2 for line in lines]


def _path(lines):
    subpaths = []
    for line in lines:
        if len(line) == 1:  # a dot: a zero-length segment, drawn by the round cap
            line = np.concatenate([line, line])
        subpaths.append("M" + " L".join(f"{x:.2f},{y:.2f}" for x, y in line))
    if not subpaths:
        return ""
    return (f'<path d="{" ".join(subpaths)}" fill="none" stroke="{STROKE_COLOUR}" stroke-width="{STROKE_WIDTH}" '
            f'stroke-linecap="round" stroke-linejoin="round"/>')


def sketch_svg(stroke3, size=CANVAS):
    """One sketch as an SVG document: white square canvas, the drawing fitted and centred.

    Every point is first rounded to the nearest whole data unit. Quick, Draw! drawings lie on
    that grid and samples do not; unrounded, the grid would show in the pixels (a real drawing's
    short segments are often exactly level or upright, a sample's almost never) and give a
    sketch's source away."""
    lines = fit_lines([np.round(line) for line in stroke3_to_lines(stroke3)], size)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="{size}" height="{size}" fill="#ffffff"/>{_path(lines)}</svg>')


def svg_to_png(svg):
    """SVG -> 8-bit greyscale PNG bytes with no ancillary chunks (no text, time or size info).

    cairosvg draws into an image surface whose pixels go straight to Pillow: letting cairo
    encode an RGBA PNG only for Pillow to decode it again took half the time."""
    surface = cairosvg.surface.PNGSurface(cairosvg.parser.Tree(bytestring=svg.encode("utf-8")), None, 96)
    pixels = surface.cairo
    pixels.flush()
    size = (pixels.get_width(), pixels.get_height())
    # cairo's ARGB32 is premultiplied and native-endian (BGRA bytes); the canvas is opaque.
    image = Image.frombuffer("RGBA", size, bytes(pixels.get_data()), "raw", "BGRA", pixels.get_stride(), 1)
    surface.finish()
    out = io.BytesIO()
    image.convert("L").save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def sketch_png(stroke3, size=CANVAS):
    """The PNG bytes participants see for one sketch; the same input always gives the same bytes."""
    return svg_to_png(sketch_svg(stroke3, size))


TITLE_SIZE, CAPTION_SIZE = 16, 11  # font sizes of a contact sheet's title and captions, in pixels


def contact_sheet(images, columns=8, cell=128, captions=None, title=""):
    """A grid of sketch images (PNG bytes, as sketch_png makes them) for researchers, each in a
    framed cell, with a caption under each cell if `captions` are given (lines split at "\n") and a
    title line above the grid if `title` is. Returns PNG bytes."""
    import matplotlib
    from PIL import ImageDraw, ImageFont

    # DejaVu Sans, which matplotlib carries: clear at small sizes, with spaces a reader can see.
    font_file = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    title_font, caption_font = ImageFont.truetype(font_file, TITLE_SIZE), ImageFont.truetype(font_file, CAPTION_SIZE)
    columns = max(1, min(columns, len(images) or 1))
    rows = max(1, -(-len(images) // columns))
    caption_lines = max((str(caption).count("\n") + 1 for caption in captions), default=1) if captions else 0
    line_height = CAPTION_SIZE + 2
    caption_height = caption_lines * line_height + 3 if captions else 0
    heading = TITLE_SIZE + 10 if title else 0
    width = max(columns * cell, int(title_font.getlength(title)) + 8 if title else 0)
    sheet = Image.new("L", (width, heading + rows * (cell + caption_height)), 255)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 4), title, fill=0, font=title_font)
    for i, png in enumerate(images):
        x, y = (i % columns) * cell, heading + (i // columns) * (cell + caption_height)
        draw.rectangle((x, y, x + cell - 1, y + cell + caption_height - 1), outline=221)
        sheet.paste(Image.open(io.BytesIO(png)).convert("L").resize((cell - 2, cell - 2)), (x + 1, y + 1))
        for k, line in enumerate(str(captions[i]).split("\n") if captions else []):
            draw.text((x + cell / 2, y + cell + 1 + k * line_height), line, fill=60, font=caption_font, anchor="ma")
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()
