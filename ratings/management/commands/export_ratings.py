"""export_ratings: write a study's ratings, summary or participants as CSV."""

from django.core.management.base import BaseCommand, CommandError

from generator.files import atomic_write
from ratings.management.options import add_results_arguments, existing_study, output_file
from ratings.stats.exports import csv_text, participants_table, tidy_ratings
from ratings.stats.frame import ratings_frame
from ratings.stats.results import study_results


class Command(BaseCommand):
    help = (
        "Write a study's ratings as CSV: one row per rating (attention checks and excluded "
        "participants included, flagged by the attention_check and exclusion columns); with "
        "--summary the per-source, per-category, per-condition table with bootstrap confidence "
        "intervals, as study_report computes it; with --participants one row per participant "
        "(ids, times, items rated, attention checks failed, exclusion), to approve submissions by."
    )

    def add_arguments(self, parser):
        add_results_arguments(parser, applies_to="with --summary: ")
        parser.add_argument("--out", required=True, help="the CSV file to write (replaced if it exists)")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--summary", action="store_true", help="write the summary table instead of the ratings")
        which.add_argument("--participants", action="store_true",
                           help="write one row per participant instead of the ratings")

    def handle(self, *args, **opts):
        if opts["include_excluded"] and not opts["summary"]:
            raise CommandError("--include-excluded applies to --summary; the ratings file always has every "
                               "rating, with its exclusion in the 'exclusion' column.")
        study = existing_study(opts["study"])
        out = output_file(opts["out"], study, ".csv")

        if opts["summary"]:
            table = study_results(study, include_excluded=opts["include_excluded"],
                                  bootstrap=opts["bootstrap"], seed=opts["seed"]).summary
            what = "summary rows"
        elif opts["participants"]:
            table = participants_table(study)
            what = "participants"
        else:
            table = tidy_ratings(ratings_frame(study))
            what = "ratings"
        try:
            with atomic_write(out) as temporary:
                temporary.write_text(csv_text(table), encoding="utf-8", newline="")
        except OSError as error:
            raise CommandError(f"Could not write {out}: {error}") from None
        self.stdout.write(f"Wrote {len(table)} {what} of study {study.slug} to {out}")
