"""Validation of everything a participant's browser sends."""

from django import forms
from django.core import signing
from django.core.validators import RegexValidator

from .drawing import read_strokes
from .models import Assignment, Rating

# Longer than anyone looks at one sketch, short enough to be a measurement and not an overflow.
MAX_RESPONSE_MS = 24 * 60 * 60 * 1000
MAX_POSITION = 100_000

# Not starting with '-': spreadsheets read such a cell of an exported CSV as a formula.
external_id = RegexValidator(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$", "Only letters, digits, '-' and '_', not starting with '-'.")


class RecruitmentForm(forms.Form):
    """The ids a recruitment link carries, Prolific style: ?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=..."""

    PROLIFIC_PID = forms.CharField(required=False, max_length=64, validators=[external_id])
    STUDY_ID = forms.CharField(required=False, max_length=64, validators=[external_id])
    SESSION_ID = forms.CharField(required=False, max_length=64, validators=[external_id])

    def external_ids(self):
        """Keyword arguments for Study.enroll."""
        return {
            "prolific_pid": self.cleaned_data["PROLIFIC_PID"],
            "external_study_id": self.cleaned_data["STUDY_ID"],
            "external_session_id": self.cleaned_data["SESSION_ID"],
        }


class ConsentForm(forms.Form):
    decision = forms.ChoiceField(choices=[("agree", "I agree"), ("decline", "I do not agree")])
    # The form's own random id (Study.enroll): optional, so a form without it still enrolls.
    consent_token = forms.CharField(required=False, max_length=40, validators=[external_id])


class PagePost(forms.Form):
    """A post exactly as a page sends it: a post with other fields than `posted_fields`, or with a
    field given twice, was not sent by the page and is refused whole."""

    posted_fields = set()

    def clean(self):
        if set(self.data) - self.posted_fields:
            raise forms.ValidationError("The post carries fields the page does not send.")
        if any(len(values) > 1 for _, values in self.data.lists()):
            raise forms.ValidationError("The post gives a field more than once.")
        return super().clean()


class TrialForm(PagePost):
    """One answer, as the trial page posts it."""

    position = forms.IntegerField(min_value=1, max_value=MAX_POSITION)
    grade = forms.ChoiceField(choices=Rating.Grade.choices)
    # Missing when the browser runs no JavaScript: the grade is kept without a time.
    response_ms = forms.IntegerField(required=False, min_value=0, max_value=MAX_RESPONSE_MS)
    # When the page was served, signed by the server (Assignment.served_token). Missing only from a
    # page served before the field existed: the grade is kept without the server's time.
    served = forms.CharField(required=False, max_length=100)

    posted_fields = {"csrfmiddlewaretoken", "position", "grade", "response_ms", "served"}

    def clean_served(self):
        token = self.cleaned_data["served"]
        if not token:
            return None
        try:
            return Assignment.read_served_token(token)
        except (signing.BadSignature, ValueError):
            raise forms.ValidationError("The page's timestamp was changed.") from None


class DrawingForm(PagePost):
    """One drawing, as the drawing page posts it: the prompt's position and the strokes, checked by
    drawing.read_strokes against the study's time limit."""

    position = forms.IntegerField(min_value=1, max_value=MAX_POSITION)
    strokes = forms.CharField(strip=False)

    posted_fields = {"csrfmiddlewaretoken", "position", "strokes"}

    def __init__(self, data, time_limit_s):
        super().__init__(data)
        self.time_limit_s = time_limit_s

    def clean_strokes(self):
        return read_strokes(self.cleaned_data["strokes"], self.time_limit_s)


class ResumeForm(forms.Form):
    """The resume code a participant was shown at the start, to continue on another browser."""

    code = forms.CharField(max_length=20)
