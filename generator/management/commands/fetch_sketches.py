"""fetch_sketches: download Quick, Draw! category files into the data folder."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generator.data import SketchDataError, category_file, data_folders, fetch_category
from generator.management.options import parse_categories


class Command(BaseCommand):
    help = (
        "Download the official sketch-rnn Quick, Draw! files (<category>.npz) into the data folder. "
        "Files already present and valid are skipped; a download is validated before it takes its "
        "final name. Offline? Put the files into a folder and set QUICKDRAW_DATA_DIR (or --data-dir)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--categories", required=True, help="comma-separated categories, e.g. pig,face")
        parser.add_argument("--data-dir", default=None, help="data search path, dir1:dir2 (default QUICKDRAW_DATA_DIR); the files go into its first folder")

    def handle(self, *args, **opts):
        # Into the first folder of the search path, unless a later folder holds the category already.
        try:
            folders = data_folders(opts["data_dir"] or settings.QUICKDRAW_DATA_DIR, must_exist=False)
        except SketchDataError as e:
            raise CommandError(str(e))
        data_dir, elsewhere = folders[0], [f for f in folders[1:] if f.is_dir()]
        failures = []
        for category in parse_categories(opts["categories"]):
            bars = []

            def progress(total, category=category):
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=category, file=sys.stderr, leave=False)
                bars.append(bar)
                return bar.update

            held = [path for folder in elsewhere for path in (folder / f"{category}.npz", folder / f"{category}.ndjson")
                    if path.is_file()]
            if held and not category_file(category, data_dir).exists():
                self.stdout.write(f"{category}: already present {held[0]}")
                continue
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
