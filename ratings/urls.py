"""Participant-facing URLs. Nothing here names a stimulus: a trial page carries its sketch in itself."""

from django.urls import path

from . import drawing_views, views

app_name = "ratings"
urlpatterns = [
    path("s/<slug:slug>/", views.landing, name="landing"),
    path("s/<slug:slug>/resume/", views.resume_with_code, name="resume"),
    path("s/<slug:slug>/consent/", views.consent, name="consent"),
    path("s/<slug:slug>/declined/", views.declined, name="declined"),
    path("s/<slug:slug>/drawing/", drawing_views.drawing_instructions, name="drawing"),
    path("s/<slug:slug>/draw/", drawing_views.draw, name="draw"),
    path("s/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("s/<slug:slug>/trial/", views.trial, name="trial"),
    path("s/<slug:slug>/done/", views.done, name="done"),
]
