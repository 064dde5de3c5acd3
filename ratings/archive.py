"""A study as one zip file, for publication and safe keeping, and back into a database.

The archive holds everything a publication needs: every stimulus's PNG with its provenance, the
ratings and the participants as the exports write them, the results as CSV and JSON, and the code
version that made it. It also holds the study's rows as data (data.json), from which restore_archive
rebuilds the study in another database, every id, time and image the same, so that the results
computed there are the archived ones. manifest.json gives each file's SHA-256: a damaged archive is
refused before anything is written.
"""

import datetime
import hashlib
import json
import subprocess
import zipfile
from importlib import metadata

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from generator.files import atomic_write

from .models import Assignment, Condition, Participant, Rating, Stimulus, StimulusImage, Study

FORMAT = 1
# The study's rows, parents before children. Each row keeps its own id and its foreign keys as ids
# of rows in the archive; restoring gives every row a new id and maps the keys.
MODELS = [("study", Study), ("conditions", Condition), ("stimuli", Stimulus), ("participants", Participant),
          ("assignments", Assignment), ("ratings", Rating)]
PACKAGES = ["Django", "numpy", "pandas", "scipy", "statsmodels", "krippendorff", "torch", "CairoSVG", "pillow"]
README = """\
A human-evaluation study of sketches (Sketchlab), archived by its archive_study command.

manifest.json     the study, when and by which code version it was archived, the packages' versions,
                  and each file's SHA-256
results.json      the results as study_report --json --no-estimate gives them (headline, summary,
                  agreement, progress, method)
summary.csv       the summary table with bootstrap confidence intervals
ratings.csv       one row per rating (attention checks and excluded participants flagged)
participants.csv  one row per participant
stimuli.csv       one row per stimulus: its provenance and its image's file name in stimuli/
stimuli/          every stimulus's PNG, exactly as participants saw it
data.json         the study's database rows, for restore_study
"""


class ArchiveError(Exception):
    """An archive that cannot be written or restored; nothing has been changed."""


def study_rows(study):
    """{name: [row dicts]} of the study, in MODELS order."""
    querysets = {
        "study": Study.objects.filter(pk=study.pk),
        "conditions": study.conditions.order_by("pk"),
        "stimuli": study.stimuli.order_by("pk"),
        "participants": study.participants.order_by("pk"),
        "assignments": Assignment.objects.filter(participant__study=study).order_by("pk"),
        "ratings": Rating.objects.filter(participant__study=study).order_by("pk"),
    }
    return {name: [row_of(obj) for obj in querysets[name]] for name, _ in MODELS}


def row_of(obj):
    row = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        row[field.attname] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return row


def code_version():
    """The project's git commit (with -dirty for changes not committed), or 'unknown'."""
    try:
        run = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=settings.BASE_DIR,
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return run.stdout.strip() if run.returncode == 0 else "unknown"


def package_versions():
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def computed_results(study):
    """(StudyResults, results.json's bytes): the results as study_report --json --no-estimate gives
    them (the estimate of the participants still needed simulates the study, and is no result)."""
    from .stats.exports import to_json
    from .stats.progress import study_progress
    from .stats.results import study_results

    results = study_results(study)
    return results, to_json(results, study_progress(results, estimate=False)).encode()


def archive_files(study):
    """{name in the zip: bytes} of the study's archive, manifest.json last."""
    from .stats.exports import csv_text, participants_table, tidy_ratings

    results, results_json = computed_results(study)
    files = {
        "README.txt": README.encode(),
        "results.json": results_json,
        "summary.csv": csv_text(results.summary).encode(),
        "ratings.csv": csv_text(tidy_ratings(results.ratings)).encode(),
        "participants.csv": csv_text(participants_table(study)).encode(),
        "stimuli.csv": stimuli_table(study).encode(),
        "data.json": json.dumps({"format": FORMAT, **study_rows(study)}, indent=1).encode(),
    }
    for public_id, png in (StimulusImage.objects.filter(stimulus__study=study).order_by("stimulus")
                            .values_list("stimulus__public_id", "png")):
        files[f"stimuli/{public_id}.png"] = bytes(png)
    files["manifest.json"] = json.dumps({
        "format": FORMAT, "study": study.slug, "archived": timezone.now().isoformat(), "code_version": code_version(),
        "packages": package_versions(),
        "counts": {name: len(rows) for name, rows in json.loads(files["data.json"]).items() if name != "format"},
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }, indent=1).encode()
    return files


def stimuli_table(study):
    """stimuli.csv: each stimulus's provenance, its condition's description and its image's file."""
    import pandas as pd

    from .stats.exports import csv_text

    fields = ["public_id", "source", "category", "condition__checkpoint_name", "condition__checkpoint_sha256",
              "condition__temperature", "condition__mode", "condition__reject_degenerate", "dataset_file",
              "dataset_split", "dataset_index", "seed", "sample_index", "ended", "num_points", "created"]
    frame = pd.DataFrame(list(study.stimuli.order_by("pk").values_list(*fields)),
                         columns=[field.replace("condition__", "") for field in fields])
    frame["image"] = "stimuli/" + frame["public_id"] + ".png"
    frame["created"] = [timestamp.isoformat() for timestamp in frame["created"]]
    for column in ("dataset_index", "seed", "sample_index"):
        frame[column] = frame[column].astype("Int64")
    return csv_text(frame)


def write_archive(study, path):
    """Write the study's archive to `path` (aside, then renamed: complete or untouched)."""
    files = archive_files(study)
    with atomic_write(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return json.loads(files["manifest.json"])


def read_archive(path):
    """{name: bytes} of an archive whose every file matches its manifest's SHA-256."""
    try:
        with zipfile.ZipFile(path) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile) as error:
        raise ArchiveError(f"{path} is not a readable zip file ({error})") from None
    try:
        manifest = json.loads(files["manifest.json"])
    except (KeyError, ValueError):
        raise ArchiveError(f"{path} has no readable manifest.json: not a study archive") from None
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path} is in archive format {manifest.get('format')}, this code reads {FORMAT}")
    expected = manifest["sha256"]
    damaged = sorted(name for name in expected if name not in files
                     or hashlib.sha256(files[name]).hexdigest() != expected[name])
    extra = sorted(set(files) - set(expected) - {"manifest.json"})
    if damaged or extra:
        raise ArchiveError(f"{path} is damaged: {', '.join(damaged + extra)} do(es) not match the manifest")
    return files, manifest


def restore_archive(path):
    """Rebuild the archived study in this database (where no study has its slug); returns it, the
    archive's manifest and its results.json. All or nothing."""
    files, manifest = read_archive(path)
    rows = json.loads(files["data.json"])
    slug = rows["study"][0]["slug"]
    if Study.objects.filter(slug=slug).exists():
        raise ArchiveError(f"This database has a study {slug!r} already; restore into one without it.")
    new_ids = {}  # (model, archived id) -> id here
    with transaction.atomic():
        for name, model in MODELS:
            new_ids.update(insert_rows(model, rows[name], new_ids))
        images = [StimulusImage(stimulus_id=new_ids[Stimulus, row["id"]], png=files[f"stimuli/{row['public_id']}.png"])
                  for row in rows["stimuli"] if f"stimuli/{row['public_id']}.png" in files]
        StimulusImage.objects.bulk_create(images)
    return Study.objects.get(slug=slug), manifest, files["results.json"]


def insert_rows(model, rows, new_ids):
    """Create `model` rows with the archived values (times set by Django on creation restored too)
    and foreign keys mapped to the new ids; returns {(model, archived id): new id}."""
    objects = []
    for row in rows:
        values = {}
        for field in model._meta.concrete_fields:
            value = row[field.attname]
            if field.primary_key:
                continue
            if isinstance(field, models.ForeignKey) and value is not None:
                value = new_ids[field.related_model, value]
            elif isinstance(field, models.DateTimeField) and value is not None:
                value = datetime.datetime.fromisoformat(value)
            values[field.attname] = value
        objects.append(model(**values))
    model.objects.bulk_create(objects)
    stamped = [f.name for f in model._meta.concrete_fields
               if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)]
    if stamped:
        for obj, row in zip(objects, rows):
            for name in stamped:
                setattr(obj, name, datetime.datetime.fromisoformat(row[name]))
        model.objects.bulk_update(objects, stamped)
    return {(model, row["id"]): obj.pk for obj, row in zip(objects, rows)}


def results_json(study):
    return computed_results(study)[1]
