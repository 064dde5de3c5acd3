"""The site's own pages: the home page (a neutral page for visitors, since studies are private and
reached by their links only; the list of studies for signed-in researchers) and the favicon."""

from pathlib import Path

from django.db.models import Count
from django.http import FileResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .models import Rating, Stimulus, Study

FAVICON = Path(__file__).resolve().parent / "static" / "ratings" / "favicon.png"


@require_safe
def home(request):
    if not request.user.is_active or not request.user.is_staff:
        return render(request, "site/home.html")
    return render(request, "site/studies.html", {"studies": [study_row(request, study) for study in Study.objects.all()]})


def study_row(request, study):
    """What the study list shows of one study: its status, participants, ratings and links."""
    from .stats.progress import participant_counts

    stimuli = dict(study.stimuli.values_list("source").annotate(n=Count("pk")).order_by())
    return {
        "study": study,
        "status": study_status(study, stimuli),
        "participants": participant_counts(study),
        "ratings": Rating.objects.filter(participant__study=study).exclude(
            stimulus__source=Stimulus.Source.ATTENTION).count(),
        "stimuli": stimuli.get(Stimulus.Source.REAL, 0) + stimuli.get(Stimulus.Source.GENERATED, 0),
        "participant_link": request.build_absolute_uri(study.get_absolute_url()),
        "recruitment_link": study.recruitment_link(request),
        "warning": study.uncredited_warning,
    }


def study_status(study, stimuli):
    if not stimuli.get(Stimulus.Source.REAL) and not stimuli.get(Stimulus.Source.GENERATED):
        return "no stimuli yet"
    return "open" if study.is_open else "closed"


@require_safe
def favicon(request):
    response = FileResponse(FAVICON.open("rb"), content_type="image/png")
    response["Cache-Control"] = "public, max-age=604800"
    return response
