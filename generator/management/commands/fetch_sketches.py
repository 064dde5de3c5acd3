import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generator.data import SketchDataError, fetch_category
from generator.management.options import parse_categories


class Command(BaseCommand):
    help = (
        "Download the official sketch-rnn Quick, Draw! files (<category>.npz) into the data folder. "
        "Files already present and valid are skipped; a download is validated before it takes its "
        "final name. Offline? Put the files into a folder and set QUICKDRAW_DATA_DIR (or --data-dir)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--categories", required=True, help="comma-separated categories, e.g. pig,face")
        parser.add_argument("--data-dir", default=None, help="folder for the files (default QUICKDRAW_DATA_DIR)")

    def handle(self, *args, **opts):
        data_dir = opts["data_dir"] or settings.QUICKDRAW_DATA_DIR
        failures = []
        for category in parse_categories(opts["categories"]):
            bars = []

            def progress(total, category=category):
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=category, file=sys.stderr, leave=False)
                bars.append(bar)
                return bar.update

            try:
                path, fetched = fetch_category(category, data_dir, settings.QUICKDRAW_URL, progress)
            except SketchDataError as e:
                failures.append(str(e))
                self.stderr.write(f"{category}: {e}")
                continue
            finally:
                for bar in bars:
                    bar.close()
            self.stdout.write(f"{category}: {'downloaded' if fetched else 'already present'} {path}")
        if failures:
            raise CommandError(f"{len(failures)} categor{'y' if len(failures) == 1 else 'ies'} could not be fetched")
