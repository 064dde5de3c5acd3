"""Participant-facing URLs. Nothing here names a stimulus's source or category."""

from django.urls import path

from . import views

app_name = "ratings"
urlpatterns = []
