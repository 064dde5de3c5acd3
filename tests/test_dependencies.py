"""The import rules between the parts: generator/ (the Sketch-RNN library) imports nothing of
ratings/ (the study) and defines no Django models, and the web processes start without torch,
pandas, numpy or cairosvg."""

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("torch", "pandas", "numpy", "cairosvg")


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


GENERATOR_WITHOUT_RATINGS = """
import importlib, importlib.abc, pkgutil, sys

class RefuseRatings(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ratings" or name.startswith("ratings."):
            raise ImportError(f"generator imported {name}")

sys.meta_path.insert(0, RefuseRatings())

import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "generator"],
                   DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()

import generator
names = [m.name for m in pkgutil.walk_packages(generator.__path__, "generator.")]
for name in names:
    importlib.import_module(name)
from django.apps import apps
models = [model.__name__ for model in apps.get_app_config("generator").get_models()]
print(len(names), "modules;", "models:", models)
sys.exit(1 if models else 0)
"""


def test_every_generator_module_imports_with_ratings_refused_and_defines_no_models():
    run = run_python(GENERATOR_WITHOUT_RATINGS)
    assert run.returncode == 0, run.stdout + run.stderr
    modules = int(run.stdout.split()[0])
    assert modules >= 10  # the walk found the library and its commands, not an empty package


WEB_PROCESS = f"""
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "studysite.settings"
import studysite.wsgi
from django.urls import get_resolver

def resolve_all(resolver):
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            resolve_all(pattern)
        else:
            pattern.callback

resolve_all(get_resolver())
import django.contrib.admin, ratings.admin, ratings.errors
print(" ".join(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_the_web_process_starts_without_torch_pandas_numpy_or_cairosvg():
    run = run_python(WEB_PROCESS)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == []
