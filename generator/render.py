"""The one renderer: stroke-3 -> SVG -> PNG. Real and generated sketches go through exactly this
code, so an image says nothing about where its drawing came from: same canvas, margin, stroke,
scaling and centring, a white background, no text, and no metadata chunks in the PNG.
"""

import io

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


def _path(lines, offset=(0.0, 0.0), width=STROKE_WIDTH):
    subpaths = []
    for line in lines:
        line = line + np.asarray(offset)
        if len(line) == 1:  # a dot: a zero-length segment, drawn by the round cap
            line = np.concatenate([line, line])
        subpaths.append("M" + " L".join(f"{x:.2f},{y:.2f}" for x, y in line))
    if not subpaths:
        return ""
    return (f'<path d="{" ".join(subpaths)}" fill="none" stroke="{STROKE_COLOUR}" stroke-width="{width}" '
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


def grid_png(drawings, columns=8, cell=128, captions=None):
    """A contact sheet for researchers: drawings in a grid of cells, optional caption per cell."""
    columns = max(1, min(columns, len(drawings) or 1))
    rows = max(1, -(-len(drawings) // columns))
    caption_height = 14 if captions else 0
    width, height = columns * cell, rows * (cell + caption_height)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    for i, drawing in enumerate(drawings):
        x, y = (i % columns) * cell, (i // columns) * (cell + caption_height)
        parts.append(f'<rect x="{x + 0.5}" y="{y + 0.5}" width="{cell - 1}" height="{cell + caption_height - 1}" '
                     f'fill="none" stroke="#dddddd"/>')
        parts.append(_path(fit_lines(stroke3_to_lines(drawing), cell, cell // 12), (x, y), width=1.5))
        if captions:
            text = str(captions[i]).replace("&", "&amp;").replace("<", "&lt;")
            parts.append(f'<text x="{x + cell / 2}" y="{y + cell + caption_height - 3}" font-size="10" '
                         f'font-family="sans-serif" text-anchor="middle" fill="#555555">{text}</text>')
    parts.append("</svg>")
    return svg_to_png("".join(parts))
