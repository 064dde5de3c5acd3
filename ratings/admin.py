"""Admin for studies, stimuli, participants and ratings (staff only).

Stimuli, participants and ratings are data: they come from generate_samples and from
participants, so the admin shows them but doesn't let anyone add or edit them by hand.
"""

from django.contrib import admin
from django.db import models
from django.db.models import Count, Exists, OuterRef
from django.utils.html import format_html

from .attention import ensure_attention_stimuli
from .models import Assignment, Condition, Participant, Rating, Stimulus, Study
from . import drawing_admin  # noqa: F401  (registers the review of the drawing task's drawings)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["slug", "title_and_slug", "is_open", "items_per_participant", "attention_checks", "stimulus_count",
                    "participant_count", "finished_count", "rating_count"]
    list_filter = ["is_open"]
    search_fields = ["slug", "title"]
    readonly_fields = ["created"]
    # A completion URL typed without a scheme is an https one (Django 6.0's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        same_title = Study.objects.filter(title=OuterRef("title")).exclude(pk=OuterRef("pk"))
        return super().get_queryset(request).annotate(title_shared=Exists(same_title))

    @admin.display(description="title", ordering="title")
    def title_and_slug(self, study):
        """The title, with the slug beside it where another study has the same title."""
        return f"{study.title} ({study.slug})" if study.title_shared else study.title

    @admin.display(description="stimuli")
    def stimulus_count(self, study):
        return study.stimuli.count()

    @admin.display(description="participants")
    def participant_count(self, study):
        return study.participants.count()

    @admin.display(description="finished")
    def finished_count(self, study):
        return study.participants.filter(finished__isnull=False).count()

    @admin.display(description="ratings")
    def rating_count(self, study):
        return Rating.objects.filter(participant__study=study).count()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The link needs the site's address, which only the request knows: it goes into the
        # page's context (admin/ratings/study/change_form.html), not into the shared admin.
        if obj is not None:
            context["recruitment_link"] = obj.recruitment_link(request)
            context["recruitment_warning"] = "" if obj.completion_code or obj.completion_url else obj.UNCREDITED_WARNING
            context["expected_minutes"] = obj.expected_minutes()
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # A changed number of attention checks takes effect for the next participant.
        ensure_attention_stimuli(obj)


@admin.register(Condition)
class ConditionAdmin(ReadOnlyAdmin):
    list_display = ["label", "study", "checkpoint_name", "temperature", "temperature_rule", "mode", "reject_degenerate",
                    "created"]
    list_filter = ["study", "mode", "reject_degenerate"]


@admin.register(Stimulus)
class StimulusAdmin(ReadOnlyAdmin):
    list_display = ["thumbnail", "public_id", "study", "source", "category", "condition", "num_points", "created"]
    list_filter = ["study", "source", "category", "condition"]
    list_select_related = ["study", "condition"]
    search_fields = ["public_id", "dataset_file"]
    readonly_fields = ["thumbnail"]

    @admin.display(description="image")
    def thumbnail(self, stimulus):
        return format_html('<img src="{}" alt="sketch" width="64" height="64" loading="lazy">',
                           stimulus.get_absolute_url())


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ["position", "stimulus"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "study", "prolific_pid", "attempt", "consented", "started", "finished", "rating_count"]
    list_filter = ["study", ("finished", admin.EmptyFieldListFilter), "attempt"]
    search_fields = ["token", "prolific_pid", "external_session_id"]
    inlines = [AssignmentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("study").annotate(rating_count=Count("ratings"))

    @admin.display(description="ratings", ordering="rating_count")
    def rating_count(self, participant):
        return participant.rating_count


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["participant", "position", "stimulus", "source", "category", "grade", "response_ms", "server_ms",
                    "created"]
    list_filter = ["participant__study", "grade", "stimulus__source", "stimulus__category"]
    list_select_related = ["participant", "stimulus"]
    search_fields = ["participant__token", "participant__prolific_pid", "stimulus__public_id"]

    @admin.display(ordering="stimulus__source")
    def source(self, rating):
        return rating.stimulus.source

    @admin.display(ordering="stimulus__category")
    def category(self, rating):
        return rating.stimulus.category
