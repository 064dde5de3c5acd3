"""Researcher-facing URLs (staff only): results, downloads, stimulus images."""

from django.urls import path

from . import results_views

app_name = "results"
urlpatterns = [
    path("", results_views.index, name="index"),
    path("images/<slug:public_id>.png", results_views.stimulus_image, name="image"),
    path("<slug:slug>/", results_views.study_page, name="study"),
    path("<slug:slug>/ratings.csv", results_views.ratings_csv, name="ratings_csv"),
    path("<slug:slug>/summary.csv", results_views.summary_csv, name="summary_csv"),
    path("<slug:slug>/participants.csv", results_views.participants_csv, name="participants_csv"),
]
