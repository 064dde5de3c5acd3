"""Participant views of the drawing task, which comes after consent and before the grading: its
instructions (Start fixes the participant's prompts), then one page per prompt with a canvas.

They use the study's own participant machinery (views.py): the session's participant, `resume`,
which sends everyone to where they are, and the plain message pages. A reload shows the same
prompt on a fresh canvas; a repeated post stores nothing twice.
"""

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import drawing
from .drawing import Drawing, DrawingPrompt
from .forms import DrawingForm
from .models import NotAssigned, OutOfOrder
from .views import message, resume, study_page


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def drawing_instructions(request, study, participant):
    if participant is None or not participant.drawing_pending() or participant.prompts.exists():
        return resume(study, participant)
    if request.method != "POST":
        return render(request, "ratings/drawing_instructions.html", {"study": study})
    DrawingPrompt.assign(participant)
    return resume(study, participant)


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def draw(request, study, participant):
    if participant is None:
        if request.method == "POST":
            return message(request, 403, "Your session has ended",
                           "We could not tell who sent this drawing, so it was not recorded. Please follow "
                           "your study link again.", study=study)
        return resume(study, participant)
    if request.method == "POST":
        return record(request, study, participant)
    prompt = DrawingPrompt.next_for(participant)
    if prompt is None:
        return resume(study, participant)
    context = {"study": study, "prompt": prompt, "total": participant.prompts.count(),
               "canvas_units": drawing.CANVAS_UNITS, "max_strokes": drawing.MAX_STROKES,
               "max_points": drawing.MAX_POINTS}
    return render(request, "ratings/draw.html", context)


def record(request, study, participant):
    back = reverse("ratings:draw", args=[study.slug])
    form = DrawingForm(request.POST, time_limit_s=study.drawing_seconds)
    try:
        if form.is_valid():
            Drawing.record(participant, **form.cleaned_data)
            return resume(study, participant)
    except OutOfOrder:
        return message(request, 409, "That drawing is not the next one",
                       "Nothing was recorded. Please continue with the drawing the study asks for.",
                       back, "Back to the study", study)
    except NotAssigned:
        pass
    return message(request, 400, "That drawing could not be read",
                   "Nothing was recorded. Please draw it again.", back, "Back to the drawing", study)
