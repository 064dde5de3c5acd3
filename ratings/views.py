"""Participant views: landing -> consent -> (the drawing task, drawing_views.py) -> instructions ->
trials -> done.

A participant is the token kept in their session, one per study. Every page works out from the
database where the participant is, so a reload, a closed tab or a server restart resumes at the
next unrated item, and a repeated post stores nothing twice.
"""

import functools
import logging

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from .forms import ConsentForm, RecruitmentForm, TrialForm
from .models import Assignment, NotAssigned, OutOfOrder, Rating, Stimulus, Study, new_consent_token

logger = logging.getLogger(__name__)


def participant_key(study_id):
    return f"ratings.participant.{study_id}"


def recruitment_key(study_id):
    return f"ratings.recruitment.{study_id}"


def consent_key(study_id):
    return f"ratings.consent.{study_id}"


def remember(request, study, participant):
    # Whoever this browser follows from now on, a consent form it is shown later is someone new's.
    request.session.pop(consent_key(study.pk), None)
    if participant is None:
        request.session.pop(participant_key(study.pk), None)
    else:
        request.session[participant_key(study.pk)] = participant.token


def message(request, status, title, text, link=None, link_text=None, study=None):
    """A plain page that explains itself: closed studies, bad links, refused answers."""
    context = {"title": title, "text": text, "link": link, "link_text": link_text, "study": study}
    return render(request, "ratings/message.html", context, status=status)


def closed(request, study):
    """For newcomers only: whoever consented before the study closed may finish it."""
    return message(request, 403, "This study is closed",
                   "It is not taking new participants at the moment. Thank you for your interest.", study=study)


def without_recruitment_link(request, study):
    """The page for a newcomer without a recruitment id, when the study takes only those who have
    one; None when they may go on."""
    if not study.recruitment_id_required or request.session.get(recruitment_key(study.pk), {}).get("prolific_pid"):
        return None
    return message(request, 403, "Please use your recruitment link",
                   "This study takes part through a recruitment site only. Please open it from the link "
                   "the site gave you.", study=study)


def resume(study, participant):
    """Redirect to where the participant is in the study."""
    if participant is None:
        return redirect("ratings:landing", study.slug)
    if participant.finished:
        return redirect("ratings:done", study.slug)
    if participant.drawing_pending():
        return redirect("ratings:draw" if participant.prompts.exists() else "ratings:drawing", study.slug)
    if not participant.assignments.exists():
        return redirect("ratings:instructions", study.slug)
    return redirect("ratings:trial", study.slug)


def study_page(view):
    """Find the study (a friendly 404 page if there is none) and the session's participant.
    Participant pages change with every answer, so the browser must never reuse one."""

    @never_cache
    @functools.wraps(view)
    def wrapper(request, slug):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            return message(request, 404, "Study not found",
                           "There is no study at this address. Please check the link you were given.")
        token = request.session.get(participant_key(study.pk))
        participant = study.participants.filter(token=token).first() if token else None
        return view(request, study, participant)

    return wrapper


@require_safe
@study_page
def landing(request, study, participant):
    form = RecruitmentForm(request.GET)
    if not form.is_valid():
        return message(request, 400, "This link is incomplete",
                       "The link you followed carries ids we cannot read. Please use the link exactly "
                       "as the recruitment site gave it to you.", study=study)
    ids = form.external_ids()
    if ids["prolific_pid"] and (participant is None or participant.prolific_pid != ids["prolific_pid"]):
        # The link names someone: resume them, or start afresh for a new person on this browser.
        participant = study.participants.filter(prolific_pid=ids["prolific_pid"]).first()
        remember(request, study, participant)
    if participant:
        return resume(study, participant)  # open or closed: someone who consented may finish
    if not study.is_open:
        return closed(request, study)
    if any(ids.values()):
        # A later visit without the ids (a bookmark, a redirect back here) keeps those stored.
        request.session[recruitment_key(study.pk)] = ids
    return without_recruitment_link(request, study) or render(request, "ratings/landing.html", {"study": study})


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def consent(request, study, participant):
    if participant:
        return resume(study, participant)
    if not study.is_open:
        return closed(request, study)
    refused = without_recruitment_link(request, study)
    if refused:
        return refused
    if request.method != "POST":
        # One token per browser until it enrolls, so that forms from two tabs posted at once make one participant.
        token = request.session.setdefault(consent_key(study.pk), new_consent_token())
        return render(request, "ratings/consent.html", {"study": study, "consent_token": token})
    form = ConsentForm(request.POST)
    if not form.is_valid():
        return message(request, 400, "Please choose an answer", "Go back and choose whether you agree to take part.",
                       reverse("ratings:consent", args=[study.slug]), "Back to the consent form", study=study)
    if form.cleaned_data["decision"] == "decline":
        return redirect("ratings:declined", study.slug)
    recruitment_ids = request.session.get(recruitment_key(study.pk), {})
    participant = study.enroll(form.cleaned_data["consent_token"], **recruitment_ids)
    remember(request, study, participant)
    return resume(study, participant)


@require_safe
@study_page
def declined(request, study, participant):
    return message(request, 200, "Thank you",
                   "You chose not to take part, so nothing was recorded. You can close this page; if you came "
                   "from a recruitment site, please return the study there.", study=study)


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def instructions(request, study, participant):
    # Closing the study turns newcomers away (landing and consent), not those who consented before.
    if participant is None or participant.finished or participant.drawing_pending():
        return resume(study, participant)
    if request.method != "POST":
        return render(request, "ratings/instructions.html", {"study": study})
    participant.assign()
    if not participant.assignments.exists():
        return closed(request, study)  # no stimuli yet: nothing to grade
    return redirect("ratings:trial", study.slug)


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def trial(request, study, participant):
    if participant is None:
        if request.method == "POST":
            return message(request, 403, "Your session has ended",
                           "We could not tell who sent this answer, so it was not recorded. Please follow "
                           "your study link again.", study=study)
        return resume(study, participant)
    if participant.finished or not participant.assignments.exists():
        return resume(study, participant)
    if request.method == "POST":
        return grade(request, study, participant)
    assignment = participant.next_assignment()
    if assignment is None:
        participant.finish_if_done()
        return redirect("ratings:done", study.slug)
    context = {"study": study, "assignment": assignment, "total": participant.assignments.count(),
               "grades": Rating.Grade.choices}
    return render(request, "ratings/trial.html", context)


def grade(request, study, participant):
    back = reverse("ratings:trial", args=[study.slug])
    form = TrialForm(request.POST)
    try:
        if form.is_valid():
            answer = form.cleaned_data
            if not participant.rate(**answer) and not participant.repeats_last_answer(answer["position"], answer["grade"]):
                return message(request, 409, "That sketch was answered already",
                               "You answered it in another tab or window, and that answer counts: this one was not "
                               "recorded. Please go on with the study here.", back, "Go on with the study", study)
            return resume(study, participant)
    except OutOfOrder:
        return message(request, 409, "That sketch is not the next one",
                       "Nothing was recorded. Please continue with the sketch the study shows you.",
                       back, "Back to the study", study)
    except NotAssigned:
        pass
    return message(request, 400, "That answer could not be read",
                   "Nothing was recorded. Please answer the sketch again.", back, "Back to the study", study)


@require_safe
@study_page
def done(request, study, participant):
    # Open or closed, a finished participant can always come back for their completion code.
    if participant is None or not participant.finished:
        return resume(study, participant)
    return render(request, "ratings/done.html", {"study": study})


@require_safe
def image(request, public_id):
    """A stimulus's PNG, only for a participant it is assigned to, or staff.

    No Last-Modified or ETag: file times differ between batches and would tell real from
    generated. Every image gets the same headers."""
    stimulus = Stimulus.objects.filter(public_id=public_id).first()
    if stimulus is None:
        raise Http404
    token = request.session.get(participant_key(stimulus.study_id))
    assigned = token and Assignment.objects.filter(stimulus=stimulus, participant__token=token).exists()
    if not (assigned or request.user.is_staff):
        raise Http404
    try:
        data = stimulus.image_path.read_bytes()
    except OSError as error:
        # The participant sees the page every missing image gets (and can try again); the
        # researcher must learn that a sketch of theirs cannot be shown.
        logger.error("The image of stimulus %s (study %s) cannot be read from %s: %s",
                     stimulus.public_id, stimulus.study.slug, stimulus.image_path, error)
        raise Http404
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response
