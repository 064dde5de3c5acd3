"""Participant views: landing -> consent -> (the drawing task, drawing_views.py) -> instructions ->
trials -> done.

A participant is the token this browser keeps in a signed cookie, one per study. Every page works
out from the database where the participant is, so a reload, a closed tab or a server restart resumes
at the next unrated item, and a repeated post stores nothing twice. Knowing someone's recruitment id
never makes a browser theirs: another browser continues a participant only with the resume code they
were shown at the start (or starts a new attempt, which the results exclude as a duplicate id).
"""

import functools
import logging

from django.conf import settings
from django.core import signing
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from .forms import ConsentForm, RecruitmentForm, ResumeForm, TrialForm
from .models import Assignment, NotAssigned, OutOfOrder, Participant, Rating, Study, new_consent_token

logger = logging.getLogger(__name__)

# The participants this browser is, by study: {study pk: participant token}, signed. A cookie and
# not the session, so that the pages a participant loads 40 times need no session look-up.
PARTICIPANT_COOKIE = "participant"
PARTICIPANT_SALT = "ratings.participant"


def participant_tokens(request):
    try:
        return signing.loads(request.COOKIES[PARTICIPANT_COOKIE], salt=PARTICIPANT_SALT)
    except (KeyError, signing.BadSignature, ValueError):
        return {}


def recruitment_key(study_id):
    return f"ratings.recruitment.{study_id}"


def consent_key(study_id):
    return f"ratings.consent.{study_id}"


def remember(request, response, study, participant):
    """Make this browser `participant`'s in `study` (None: nobody's) from `response` on."""
    # Whoever this browser follows from now on, a consent form it is shown later is someone new's.
    request.session.pop(consent_key(study.pk), None)
    tokens = participant_tokens(request)
    if participant is None:
        tokens.pop(str(study.pk), None)
    else:
        tokens[str(study.pk)] = participant.token
    request.COOKIES[PARTICIPANT_COOKIE] = signing.dumps(tokens, salt=PARTICIPANT_SALT)
    response.set_cookie(PARTICIPANT_COOKIE, request.COOKIES[PARTICIPANT_COOKIE],
                        max_age=settings.SESSION_COOKIE_AGE, secure=settings.SESSION_COOKIE_SECURE,
                        httponly=True, samesite="Lax")
    return response


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
    if not study.recruitment_id_required or recruitment_ids(request, study).get("prolific_pid"):
        return None
    return message(request, 403, "Please use your recruitment link",
                   "This study takes part through a recruitment site only. Please open it from the link "
                   "the site gave you.", study=study)


def recruitment_ids(request, study):
    return request.session.get(recruitment_key(study.pk), {})


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
    """Find the study (a friendly 404 page if there is none) and this browser's participant.
    Participant pages change with every answer, so the browser must never reuse one."""

    @never_cache
    @functools.wraps(view)
    def wrapper(request, slug):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            return message(request, 404, "Study not found",
                           "There is no study at this address. Please check the link you were given.")
        token = participant_tokens(request).get(str(study.pk))
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
        # The link names someone this browser does not follow: a new person on this browser. If
        # someone has consented under that id, only their resume code makes this browser theirs.
        request.session[recruitment_key(study.pk)] = ids
        page = redirect("ratings:resume", study.slug) if study.first_attempt(ids["prolific_pid"]) else None
        return remember(request, page or landing_page(request, study), study, None)
    if participant:
        return resume(study, participant)  # open or closed: someone who consented may finish
    if any(ids.values()):
        # A later visit without the ids (a bookmark, a redirect back here) keeps those stored.
        request.session[recruitment_key(study.pk)] = ids
    return landing_page(request, study)


def landing_page(request, study):
    if not study.is_open:
        return closed(request, study)
    return without_recruitment_link(request, study) or render(request, "ratings/landing.html", {"study": study})


@require_http_methods(["GET", "HEAD", "POST"])
@study_page
def resume_with_code(request, study, participant):
    """For a browser whose recruitment link names someone who consented elsewhere: their resume
    code continues where they are; without it, a new attempt (in an open study) starts afresh."""
    if participant:
        return resume(study, participant)
    prolific_pid = recruitment_ids(request, study).get("prolific_pid")
    if not study.first_attempt(prolific_pid):
        return redirect("ratings:landing", study.slug)
    context = {"study": study, "form": ResumeForm()}
    if request.method == "POST":
        form = ResumeForm(request.POST)
        found = study.resume_by_code(prolific_pid, form.cleaned_data["code"]) if form.is_valid() else None
        if found:
            return remember(request, resume(study, found), study, found)
        context.update(form=form, wrong=True, locked=not study.participants.filter(
            prolific_pid=prolific_pid, resume_failures__lt=Participant.MAX_RESUME_FAILURES).exists())
    return render(request, "ratings/resume.html", context, status=400 if context.get("wrong") else 200)


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
    participant = study.enroll(form.cleaned_data["consent_token"], **recruitment_ids(request, study))
    return remember(request, resume(study, participant), study, participant)


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
        return render(request, "ratings/instructions.html", {"study": study, "participant": participant})
    participant.assign()
    if not participant.assignments.exists():
        return closed(request, study)  # no stimuli yet: nothing to grade
    return redirect("ratings:trial", study.slug)


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
def trial(request, slug):
    """The next sketch, and the answers to it: one query finds the participant, their study and
    their next item (and, for an answer, the one after it)."""
    next_up = Assignment.next_unrated(tokens=list(participant_tokens(request).values()), slug=slug,
                                      with_following=request.method == "POST")
    if next_up is None:
        return trial_without_item(request, slug)
    participant = next_up.participant
    study = participant.study
    if request.method == "POST":
        return grade(request, study, participant, next_up)
    return trial_page(request, study, next_up)


def trial_page(request, study, assignment):
    if assignment.png is None:
        # The participant sees the page's own message for a sketch that does not show (and can
        # reload); the researcher must learn that a sketch of theirs cannot be shown.
        logger.error("Stimulus %s has no image", assignment.stimulus.public_id)
    context = {"study": study, "assignment": assignment, "grades": Rating.Grade.choices,
               "buttons_open_ms": Rating.BUTTONS_OPEN_MS}
    return render(request, "ratings/trial.html", context)


@study_page
def trial_without_item(request, study, participant):
    """The trial page of a browser with no sketch to grade: nobody's, or a participant who has not
    started, or has graded every sketch."""
    if participant is None:
        if request.method == "POST":
            return message(request, 403, "Your session has ended",
                           "We could not tell who sent this answer, so it was not recorded. Please follow "
                           "your study link again.", study=study)
        return resume(study, participant)
    participant.finish_if_done()
    return resume(study, participant)


def grade(request, study, participant, next_up):
    back = reverse("ratings:trial", args=[study.slug])
    form = TrialForm(request.POST)
    try:
        if form.is_valid():
            answer = form.cleaned_data
            if not participant.rate(**answer, next_up=next_up) and not participant.repeats_last_answer(
                    answer["position"], answer["grade"]):
                return message(request, 409, "That sketch was answered already",
                               "You answered it in another tab or window, and that answer counts: this one was not "
                               "recorded. Please go on with the study here.", back, "Go on with the study", study)
            # The answer's response is the next sketch's page: one request per sketch, not a
            # redirect and then the page. (The page makes a reload of it a plain GET.) A repeat of
            # an earlier answer leaves next_up still to answer.
            following = next_up.following if answer["position"] == next_up.position else next_up
            if participant.finished or following is None:
                return redirect("ratings:done" if participant.finished else "ratings:trial", study.slug)
            return trial_page(request, study, following)
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
