"""Bar charts of grade shares for the results page, as PNG bytes.

matplotlib is imported inside the function (the participant pages never pay for it) and used
through Figure directly, without pyplot's global state, so concurrent requests don't share figures.
"""

import io
import textwrap

from .models import Rating

# Colour-blind-safe (ColorBrewer PRGn): greens for real, purple for fake.
LABEL_WIDTH = 24  # characters per line of a bar's label
GRADE_COLOURS = {Rating.Grade.REAL: "#1b7837", Rating.Grade.POSSIBLY_REAL: "#a6dba0", Rating.Grade.FAKE: "#9970ab"}


def grade_shares_png(rows, labels, title):
    """Stacked horizontal bars, one per summary row: the shares graded real, possibly real and
    fake, with the 95% CI of "real or possibly real" drawn where that share ends, and 50% marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    # Narrow enough to stay legible when a phone shrinks it to its width; long labels (conditions)
    # wrap rather than squeeze the bars.
    labels = [textwrap.fill(str(label), LABEL_WIDTH) for label in labels]
    lines = sum(label.count("\n") for label in labels)
    figure = Figure(figsize=(6.4, 1.3 + 0.42 * len(labels) + 0.16 * lines), layout="constrained")
    axes = figure.subplots()
    left = [0.0] * len(labels)
    for grade in Rating.Grade:
        shares = rows[f"share_{grade.value}"].tolist()
        axes.barh(labels, shares, left=left, color=GRADE_COLOURS[grade], label=grade.label, height=0.6)
        left = [a + b for a, b in zip(left, shares)]
    passed = rows["share_real_or_possibly"]
    axes.errorbar(passed, labels, xerr=[passed - rows["real_or_possibly_ci_low"], rows["real_or_possibly_ci_high"] - passed],
                  fmt="none", ecolor="black", capsize=3, linewidth=1, label="95% CI, real or possibly real")
    axes.axvline(0.5, color="black", linestyle=":", linewidth=1)
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.invert_yaxis()  # first row on top, as in the table
    axes.set_title(title, loc="left")
    figure.legend(loc="outside lower center", ncols=4, frameon=False, fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=125)
    return buffer.getvalue()
