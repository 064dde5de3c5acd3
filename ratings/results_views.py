"""Researcher views: the results page and its downloads (staff only).

Everything is computed by ratings.stats, the same code as the study_report and export_ratings
commands; the views only choose the options and render. ratings.stats and ratings.charts are
imported by the views that use them: pandas, numpy and matplotlib load with the first results
request, not with every web process.
"""

import logging

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from .models import Stimulus, StimulusImage, Study, png_data_url

logger = logging.getLogger(__name__)


def include_excluded(request):
    return request.GET.get("include_excluded") == "1"


def table(frame):
    """A frame for results/table.html: numbers and percentages right-aligned, long labels (conditions)
    allowed to wrap."""
    from pandas.api.types import is_numeric_dtype

    def kind(column):
        values = frame[column].dropna().astype(str)
        if is_numeric_dtype(frame[column]) or (len(values) and values.str.match(r"^[\d.]+%").all()):
            return "number"
        return "label" if column == "condition" else ""

    kinds = [kind(column) for column in frame.columns]
    return {"header": [{"name": name, "kind": kind} for name, kind in zip(frame.columns, kinds)],
            "rows": [[{"value": "" if value is None else value, "kind": kind} for value, kind in zip(row, kinds)]
                     for row in frame.itertuples(index=False)]}


@staff_member_required
def index(request):
    """The list of studies is the site's home page for researchers."""
    return redirect("home")


@staff_member_required
def study_page(request, slug):
    from .stats.exports import summary_tables
    from .stats.frame import SCORE_MAPPING
    from .stats.progress import study_progress
    from .stats.results import study_results
    from .stats.summary import best_and_worst

    study = get_object_or_404(Study, slug=slug)
    results = study_results(study, include_excluded=include_excluded(request))
    progress = study_progress(results)
    context = {
        "title": f"{study.title} ({study.slug})",
        "study": study,
        "results": results,
        "progress": progress,
        "progress_cells": table(progress.cells),
        "participant_link": request.build_absolute_uri(study.get_absolute_url()),
        "recruitment_link": study.recruitment_link(request),
        "stimuli": table(results.stimuli),
        "exclusions": table(results.exclusions),
    }
    if results.has_ratings:
        best, worst = best_and_worst(results.items)
        context.update(
            summary=[(title, table(frame)) for title, frame in summary_tables(results.summary)],
            charts=grade_charts(results.summary),
            best=sketches(study, best),
            worst=sketches(study, worst),
            score_mapping=SCORE_MAPPING,
        )
    return render(request, "results/study.html", context)


def grade_charts(summary):
    """(title, data URI) per chart: by source, by source and category, and by condition when
    the study has more than one."""
    from . import charts

    found = []
    by_source = summary[summary["level"] == "source"]
    found.append(("By source", charts.grade_shares_png(by_source, by_source["source"].tolist(), "By source")))
    # Each category's real and generated bars side by side, as in the table by category.
    by_category = summary[summary["level"] == "source x category"].sort_values(["category", "source"],
                                                                                ascending=[True, False])
    labels = [f"{category}, {source}" for source, category in zip(by_category["source"], by_category["category"])]
    found.append(("By source and category",
                  charts.grade_shares_png(by_category, labels, "By source and category")))
    by_condition = summary[summary["level"] == "condition"]
    if len(by_condition) > 1:
        found.append(("Generated, by condition",
                      charts.grade_shares_png(by_condition, by_condition["condition"].tolist(),
                                              "Generated sketches, by condition")))
    return [(title, png_data_url(png)) for title, png in found]


def sketches(study, items):
    """Item rows with their images inlined (staff only), so the page needs no image view."""
    from .stats.exports import records

    images = dict(StimulusImage.objects.filter(stimulus__study=study, stimulus__public_id__in=list(items["stimulus"]))
                  .values_list("stimulus__public_id", "png"))
    found = []
    for item in records(items):
        png = images.get(item["stimulus"])
        item["image"] = png_data_url(bytes(png)) if png is not None else None
        found.append(item)
    return found


@staff_member_required
def stimulus_image(request, public_id):
    stimulus = get_object_or_404(Stimulus, public_id=public_id)
    png = stimulus.png
    if png is None:
        logger.error("Stimulus %s has no image", stimulus.public_id)
        raise Http404
    return HttpResponse(png, content_type="image/png")


def csv_response(frame, filename):
    from .stats.exports import csv_text

    response = HttpResponse(csv_text(frame), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_member_required
def ratings_csv(request, slug):
    from .stats.exports import tidy_ratings
    from .stats.frame import ratings_frame

    study = get_object_or_404(Study, slug=slug)
    return csv_response(tidy_ratings(ratings_frame(study)), f"{study.slug}-ratings.csv")


@staff_member_required
def participants_csv(request, slug):
    from .stats.exports import participants_table

    study = get_object_or_404(Study, slug=slug)
    return csv_response(participants_table(study), f"{study.slug}-participants.csv")


@staff_member_required
def summary_csv(request, slug):
    from .stats.results import study_results

    study = get_object_or_404(Study, slug=slug)
    results = study_results(study, include_excluded=include_excluded(request))
    suffix = "-including-excluded" if results.include_excluded else ""
    return csv_response(results.summary, f"{study.slug}-summary{suffix}.csv")
