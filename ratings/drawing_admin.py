"""The researchers' review of the drawing task in the admin (staff only): every drawing as a
thumbnail drawn by the stimuli's own renderer, filters by study, prompt, review state and drawing
time, and rejection with a reason (export_drawings leaves rejected drawings out).

Drawings come from participants: nobody adds them by hand, and a review changes only the rejection
and its note.
"""

from django.contrib import admin
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from .drawing import FAST_MS, Drawing


class PromptFilter(admin.AllValuesFieldListFilter):
    title = "prompt"


class ReviewFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("accepted", "Accepted"), ("rejected", "Rejected"),
                ("fast", f"Accepted, drawn in under {FAST_MS / 1000:g} s")]

    def queryset(self, request, queryset):
        accepted = Q(rejection="")
        return {
            "accepted": queryset.filter(accepted),
            "rejected": queryset.exclude(accepted),
            "fast": queryset.filter(accepted, duration_ms__lt=FAST_MS),
        }.get(self.value(), queryset)


def rejecting(reason):
    def action(modeladmin, request, queryset):
        count = queryset.update(rejection=reason)
        modeladmin.message_user(request, f"{count} drawing(s) rejected as {reason.label.lower()}.")

    action.__name__ = f"reject_{reason.value}"
    return admin.action(action, description=f"Reject as {reason.label.lower()}")


@admin.action(description="Accept (clear the rejection)")
def accept(modeladmin, request, queryset):
    count = queryset.update(rejection="", rejection_note="")
    modeladmin.message_user(request, f"{count} drawing(s) accepted.")


@admin.register(Drawing)
class DrawingAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "key_id", "category", "study", "participant", "review", "duration_ms", "created"]
    list_filter = ["prompt__participant__study", ("prompt__category", PromptFilter), ReviewFilter, "rejection"]
    list_select_related = ["prompt__participant__study"]
    search_fields = ["key_id", "prompt__participant__token", "prompt__participant__prolific_pid"]
    fields = ["picture", "key_id", "category", "study", "participant", "duration_ms", "created", "rejection",
              "rejection_note"]
    readonly_fields = ["picture", "key_id", "category", "study", "participant", "duration_ms", "created"]
    actions = [rejecting(Drawing.Rejection.OFF_TOPIC), rejecting(Drawing.Rejection.TEXT),
               rejecting(Drawing.Rejection.OFFENSIVE), accept]

    def has_add_permission(self, request, obj=None):
        return False

    def get_urls(self):
        image = self.admin_site.admin_view(self.image)
        return [path("<int:pk>/image.png", image, name="ratings_drawing_image"), *super().get_urls()]

    def image(self, request, pk):
        """The drawing's stroke-3 as a stimulus PNG, drawn by the one renderer."""
        from generator.render import sketch_png  # cairosvg: not at the web process's start

        if not self.has_view_permission(request):
            raise Http404
        drawing = get_object_or_404(Drawing, pk=pk)
        response = HttpResponse(sketch_png(drawing.stroke3()), content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def image_tag(self, drawing, size):
        return format_html('<img src="{}" alt="drawing of {}" width="{}" height="{}" loading="lazy">',
                           reverse("admin:ratings_drawing_image", args=[drawing.pk]), drawing.prompt.category,
                           size, size)

    @admin.display(description="drawing")
    def thumbnail(self, drawing):
        return self.image_tag(drawing, 64)

    @admin.display(description="drawing")
    def picture(self, drawing):
        return self.image_tag(drawing, 256)

    @admin.display(description="prompt", ordering="prompt__category")
    def category(self, drawing):
        return drawing.prompt.category

    @admin.display(ordering="prompt__participant__study")
    def study(self, drawing):
        return drawing.prompt.participant.study

    @admin.display(ordering="prompt__participant")
    def participant(self, drawing):
        return drawing.prompt.participant

    @admin.display(description="review", ordering="rejection")
    def review(self, drawing):
        if drawing.rejection:
            return f"rejected: {drawing.get_rejection_display()}"
        return f"accepted (under {FAST_MS / 1000:g} s)" if drawing.too_fast else "accepted"
