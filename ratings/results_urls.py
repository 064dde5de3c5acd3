"""Researcher-facing URLs (staff only): results, downloads."""

from django.urls import path

from . import results_views

app_name = "results"
urlpatterns = []
