"""Error pages in the study's plain style, so a participant never meets a bare error: unknown
addresses, missing or unassigned images, expired forms, refused hosts, refused methods, server faults,
and a database out of reach for a moment (a restart): a 503 page that tries again by itself.

They say what to do next and nothing about the request (no path, no reason, no exception), so
nothing about a stimulus: every missing image gets the very same page.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseServerError
from django.template.loader import render_to_string
from django.urls import reverse

from .models import Study
from .views import message


def not_found(request, exception):
    return message(request, 404, "Page not found",
                   "There is nothing at this address. Please check the link you were given.")


def bad_request(request, exception):
    return message(request, 400, "Bad request",
                   "This request could not be read. Please follow the link you were given again.")


def permission_denied(request, exception):
    return message(request, 403, "Not allowed", "This page is not open to you.")


def csrf_failure(request, reason=""):
    # Mostly a browser that blocks cookies, or a form whose cookie has gone. Reloading would post
    # the same expired form again, so the page links to the study's page by a plain GET, which
    # shows wherever the participant is now.
    study, link = None, None
    match = getattr(request, "resolver_match", None)
    if match and match.namespace == "ratings" and "slug" in match.kwargs:
        study = Study.objects.filter(slug=match.kwargs["slug"]).first()
    if study is not None:
        link = reverse(f"ratings:{match.url_name}", kwargs={"slug": study.slug})
        text = ("Nothing was recorded. Please tap the button below to go back to the study and try again; "
                "if this happens again, allow cookies for this site.")
    else:
        text = ("Nothing was recorded. Please follow the link you were given again; if this happens again, "
                "allow cookies for this site.")
    return message(request, 403, "This page has expired", text, link, "Back to the study", study=study)


class MethodNotAllowedPage:
    """Middleware: Django has no handler for 405, so a view's bare 'method not allowed' (a POST to
    a page that only shows, a PUT anywhere) becomes the plain page, keeping its Allow header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            page = bad_request(request, None)
            page.status_code = 405
            page["Allow"] = response["Allow"]
            return page
        return response


RETRY_AFTER_S = 3


def server_error(request):
    # Rendered without the request's context processors: whatever failed (the database, the
    # session) is not needed to say so.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return database_unavailable()
    context = {"title": "Something went wrong",
               "text": "Something went wrong on our side. Please try again in a few minutes."}
    return HttpResponseServerError(render_to_string("ratings/message.html", context))


def database_unavailable():
    """The database could not be reached (restarting, or a connection it cut): nothing of this
    request was stored. The page loads its address again by itself, as a plain GET, which shows
    the participant wherever they are; an answer that did not go through is asked for again."""
    context = {"title": "One moment, please",
               "text": "The study is busy for a moment. This page tries again by itself in a few seconds and "
                       "takes you back to where you were; if your last answer did not go through, the same "
                       "sketch is shown again.",
               "retry_after": RETRY_AFTER_S}
    response = HttpResponse(render_to_string("ratings/message.html", context), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response
