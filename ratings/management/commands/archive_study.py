"""archive_study: write a study to one zip file, for publication and safe keeping."""

from django.core.management.base import BaseCommand, CommandError

from ratings.archive import write_archive
from ratings.management.options import add_study_argument, existing_study, output_file


class Command(BaseCommand):
    help = (
        "Write everything a publication needs of a study into one zip file: every stimulus's PNG with its "
        "provenance (stimuli.csv), the ratings and the participants (as export_ratings writes them), the "
        "results as CSV and JSON (as study_report computes them), the code version and package versions that "
        "made it, and the study's database rows, from which restore_study rebuilds it with identical results. "
        "manifest.json gives each file's SHA-256."
    )

    def add_arguments(self, parser):
        add_study_argument(parser)
        parser.add_argument("--out", required=True, help="the zip file to write (replaced if it exists)")

    def handle(self, *args, **opts):
        study = existing_study(opts["study"])
        out = output_file(opts["out"], study, ".zip")
        try:
            manifest = write_archive(study, out)
        except OSError as error:
            raise CommandError(f"Could not write {out}: {error}") from None
        counts = ", ".join(f"{name}: {n}" for name, n in manifest["counts"].items() if name != "study")
        self.stdout.write(f"Archived study {study.slug} ({counts}) at code version {manifest['code_version']} "
                          f"to {out}")
