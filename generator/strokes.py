"""Stroke formats and the conversions between them.

stroke-3   (N, 3) rows [dx, dy, pen_lifted]: the offset from the previous point, and 1 on the
           last point of each stroke. The first point of a drawing is implicit at (0, 0).
stroke-5   (N, 5) rows [dx, dy, p1, p2, p3] as Sketch-RNN reads and writes them: p1 = pen
           down after this point, p2 = pen lifted after this point, p3 = the drawing has
           ended. Real points have p3 = 0; rows after the drawing are padding (0, 0, 0, 0, 1).
           A batch starts with the start token (0, 0, 1, 0, 0).
lines      a list of (k, 2) arrays of absolute points, one polyline per stroke.
ndjson     the Quick, Draw! "simplified" format: per stroke [[x0, x1, ...], [y0, y1, ...]];
           the "raw" format adds a third list of timestamps.
"""

import numpy as np

START_TOKEN = np.array([0, 0, 1, 0, 0], dtype=np.float32)


def stroke3_to_stroke5(stroke3, max_len=None):
    """(N, 3) stroke-3 -> (max_len, 5) stroke-5, padded with (0, 0, 0, 0, 1) rows.

    No start token: batching prepends it. max_len defaults to N (no padding).
    """
    stroke3 = np.asarray(stroke3)
    n = len(stroke3)
    max_len = n if max_len is None else max_len
    if n > max_len:
        raise ValueError(f"drawing has {n} points, more than max_len={max_len}")
    stroke5 = np.zeros((max_len, 5), dtype=np.float32)
    stroke5[:n, 0:2] = stroke3[:, 0:2]
    stroke5[:n, 3] = stroke3[:, 2]
    stroke5[:n, 2] = 1 - stroke3[:, 2]
    stroke5[n:, 4] = 1
    return stroke5


def stroke5_to_stroke3(stroke5):
    """stroke-5 -> stroke-3: keep the rows before the first end (p3) row; p2 is the pen bit.

    The last kept point always lifts the pen, so a drawing cut off at max length still ends
    its final stroke.
    """
    stroke5 = np.asarray(stroke5, dtype=np.float32)
    ended = np.flatnonzero(stroke5[:, 4] > 0)
    n = ended[0] if len(ended) else len(stroke5)
    stroke3 = np.zeros((n, 3), dtype=np.float32)
    stroke3[:, 0:2] = stroke5[:n, 0:2]
    stroke3[:, 2] = stroke5[:n, 3]
    if n:
        stroke3[-1, 2] = 1
    return stroke3


def stroke3_to_lines(stroke3):
    """stroke-3 -> list of absolute polylines; the drawing starts at (0, 0)."""
    stroke3 = np.asarray(stroke3, dtype=np.float64)
    if len(stroke3) == 0:
        return []
    points = np.concatenate([np.zeros((1, 2)), np.cumsum(stroke3[:, 0:2], axis=0)])
    lifted = np.concatenate([[0], stroke3[:, 2]])
    ends = np.flatnonzero(lifted == 1) + 1
    lines = np.split(points, ends)
    return [line for line in lines if len(line)]


def lines_to_stroke3(lines):
    """Absolute polylines -> stroke-3. The first point becomes the implicit origin, so the
    drawing's absolute position is dropped, as in the official sketch-rnn files."""
    lines = [np.asarray(line, dtype=np.float64).reshape(-1, 2) for line in lines]
    lines = [line for line in lines if len(line)]
    if not lines:
        return np.zeros((0, 3), dtype=np.float32)
    points = np.concatenate(lines)
    lifted = np.concatenate([np.eye(1, len(line), len(line) - 1)[0] for line in lines])
    stroke3 = np.zeros((len(points) - 1, 3), dtype=np.float32)
    stroke3[:, 0:2] = np.diff(points, axis=0)
    stroke3[:, 2] = lifted[1:]
    return stroke3


def ndjson_to_lines(drawing):
    """A Quick, Draw! ndjson `drawing` ([[xs], [ys](, [ts])] per stroke) -> polylines."""
    return [np.stack([np.asarray(s[0], dtype=np.float64), np.asarray(s[1], dtype=np.float64)], axis=1)
            for s in drawing if len(s) >= 2 and len(s[0])]


def rdp(points, epsilon):
    """Ramer-Douglas-Peucker simplification of one polyline (k, 2)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return points
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        a, b = points[start], points[end]
        inner = points[start + 1:end]
        ab = b - a
        norm = np.hypot(*ab)
        if norm == 0:
            dist = np.hypot(*(inner - a).T)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            mid = start + 1 + i
            keep[mid] = True
            stack.append((start, mid))
            stack.append((mid, end))
    return points[keep]


def simplify_stroke3(stroke3, epsilon):
    """RDP with `epsilon` (in the drawing's own units) on each stroke of a stroke-3 drawing. Every
    stroke keeps its first and last points, so the drawing keeps its strokes and its place."""
    stroke3 = np.asarray(stroke3)
    simplified = lines_to_stroke3([rdp(line, epsilon) for line in stroke3_to_lines(stroke3)])
    return simplified.astype(stroke3.dtype)


def resample_polyline(points, spacing=1.0):
    """Points every `spacing` units of arc length along the polyline (ends kept)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0], np.cumsum(seg)])
    if arc[-1] == 0:
        return points[:1]
    samples = np.append(np.arange(0, arc[-1], spacing), arc[-1])
    return np.stack([np.interp(samples, arc, points[:, 0]), np.interp(samples, arc, points[:, 1])], axis=1)


def simplify_raw_lines(lines, epsilon=2.0):
    """Raw Quick, Draw! strokes -> "simplified" strokes, the way the dataset documents it:
    align to 0, scale so the maximum is 255, resample at 1 px, RDP with epsilon 2.0, round."""
    lines = [np.asarray(line, dtype=np.float64) for line in lines if len(line)]
    if not lines:
        return []
    points = np.concatenate(lines)
    low = points.min(axis=0)
    extent = (points - low).max()
    scale = 255.0 / extent if extent > 0 else 1.0
    return [np.round(rdp(resample_polyline((line - low) * scale), epsilon)) for line in lines]


def raw_to_stroke3(drawing, epsilon=2.0):
    """A raw Quick, Draw! `drawing` ([[xs], [ys], [ts]] per stroke, in canvas pixels) -> stroke-3 as
    the dataset's simplified drawings are made (simplify_raw_lines); empty if it has no points."""
    return lines_to_stroke3(simplify_raw_lines(ndjson_to_lines(drawing), epsilon))

