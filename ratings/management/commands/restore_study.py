"""restore_study: rebuild a study from an archive_study zip file in this database."""

from django.core.management.base import BaseCommand, CommandError

from ratings.archive import ArchiveError, restore_archive, results_json
from ratings.database import require_migrated_database


class Command(BaseCommand):
    help = (
        "Rebuild a study archived by archive_study in this database (which must not hold a study of the "
        "same slug): its stimuli with their images, conditions, participants, their sequences and ratings, "
        "every id and time as archived. All or nothing: a damaged archive (a file that does not match its "
        "SHA-256 in manifest.json) is refused. Then it computes the results again and says whether they are "
        "identical to the archived ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the zip file archive_study wrote")

    def handle(self, *args, **opts):
        require_migrated_database()
        try:
            study, manifest, archived_results = restore_archive(opts["archive"])
        except ArchiveError as error:
            raise CommandError(str(error)) from None
        counts = ", ".join(f"{name}: {n}" for name, n in manifest["counts"].items() if name != "study")
        self.stdout.write(f"Restored study {study.slug} ({counts}), archived at code version "
                          f"{manifest['code_version']}.")
        if results_json(study) == archived_results:
            self.stdout.write("The results computed from the restored study are identical to the archived ones.")
        else:
            self.stderr.write("The results computed from the restored study differ from the archived ones "
                              "(results.json): compare the code and package versions in manifest.json with these.")
