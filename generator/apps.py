"""The generator app: the Sketch-RNN library (no database models) and its management commands."""

from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'generator'
