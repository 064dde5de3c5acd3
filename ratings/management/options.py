"""Command-line options that the study's commands share, each defined once: --study and its look-up,
an --out file, counts of at least one, and the options of the results (study_report, export_ratings
--summary)."""

from pathlib import Path

from django.core.management.base import CommandError

from ratings.database import require_migrated_database
from ratings.models import Study


def positive(value):
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def add_study_argument(parser, help="the study's slug"):
    parser.add_argument("--study", required=True, help=help)


def existing_study(slug):
    """The study with this slug, in a migrated database; a clear error if there is none."""
    require_migrated_database()
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        slugs = list(Study.objects.order_by("slug").values_list("slug", flat=True))
        there = f"the studies are: {', '.join(slugs)}" if slugs else "there are no studies yet"
        raise CommandError(f"No study with slug {slug!r}; {there}.")
    return study


def output_file(path, study, suffix):
    """--out as a Path: a file whose folder exists; a clear error for a folder or a missing one."""
    out = Path(path)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name, e.g. {out / (study.slug + suffix)}")
    if not out.parent.is_dir():
        raise CommandError(f"The folder {out.parent} does not exist.")
    return out


def add_results_arguments(parser, applies_to=""):
    """--study and the options of ratings.stats.results.study_results."""
    from ratings.stats.bootstrap import DEFAULT_BOOTSTRAP, DEFAULT_SEED  # pandas and numpy: only for these commands

    add_study_argument(parser)
    parser.add_argument("--include-excluded", action="store_true",
                        help=f"{applies_to}count unfinished participants and those who failed an attention check "
                             "(attention-check ratings are never counted)")
    parser.add_argument("--bootstrap", type=positive, default=DEFAULT_BOOTSTRAP,
                        help=f"{applies_to}bootstrap resamples for the confidence intervals "
                             f"(default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"{applies_to}bootstrap seed, so reports repeat (default {DEFAULT_SEED})")
