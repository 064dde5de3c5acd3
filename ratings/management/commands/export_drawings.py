"""export_drawings: a study's accepted drawings as sketch-rnn data files, one per category, which
the project's data loader reads (generate_samples --data-dir uses them as real stimuli,
train_sketch_rnn --data-dir trains on them)."""

import json
import zlib
from collections import Counter
from datetime import timezone
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generator.data import SPLITS, ndjson_split, save_npz
from generator.files import atomic_write
from ratings.management.options import add_study_argument, existing_study
from ratings.models import Drawing, Participant


def split_of(key_id, seed, valid_fraction, test_fraction):
    """A drawing's split, from a hash of the seed and its key alone: a drawing keeps its split when
    the study grows and the export is made again, so a drawing a model was trained on never turns
    into a test drawing (a real stimulus) later."""
    share = zlib.crc32(f"{seed}:{key_id}".encode()) / 2**32
    return "test" if share < test_fraction else "valid" if share < test_fraction + valid_fraction else "train"


def ndjson_record(drawing):
    """The official raw ndjson layout; every exported drawing is an accepted one."""
    created = drawing.created.astimezone(timezone.utc)
    return {"word": drawing.prompt.category, "countrycode": "", "timestamp": f"{created:%Y-%m-%d %H:%M:%S.%f} UTC",
            "recognized": True, "key_id": drawing.key_id, "drawing": drawing.strokes}


def fraction(value):
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Export a study's accepted drawings (not the rejected ones, nor those of simulated participants) into a "
        "folder, one file per category: <category>.npz in the sketch-rnn format (stroke-3 made by the dataset's "
        "simplification: aligned to 0, scaled to 0-255, resampled at 1 px, RDP epsilon 2.0; train, valid and "
        "test splits by a seeded hash of each drawing's key, with the keys beside them) or <category>.ndjson, "
        "the raw strokes in Quick, Draw!'s raw layout (the loader simplifies them the same way and splits "
        "them 80/10/10 by key_id). Point generate_samples --data-dir or train_sketch_rnn --data-dir at the "
        "folder. Keep one format per folder: the loader refuses a folder that holds both for a category."
    )

    def add_arguments(self, parser):
        add_study_argument(parser)
        parser.add_argument("--out", required=True, help="the folder to write into (made if missing)")
        parser.add_argument("--format", choices=["npz", "ndjson"], default="npz", help="default npz")
        parser.add_argument("--seed", type=int, default=0, help="npz: seed of the split (default 0)")
        parser.add_argument("--valid-fraction", type=fraction, default=0.1,
                            help="npz: share of drawings in the valid split (default 0.1)")
        parser.add_argument("--test-fraction", type=fraction, default=0.1,
                            help="npz: share of drawings in the test split, which generate_samples takes real "
                                 "stimuli from (default 0.1)")
        parser.add_argument("--force", action="store_true", help="replace files of the same name in --out")

    def handle(self, *args, **opts):
        if opts["valid_fraction"] + opts["test_fraction"] > 1:
            raise CommandError("--valid-fraction and --test-fraction add up to more than 1")
        study = existing_study(opts["study"])
        drawings = (Drawing.objects.filter(prompt__participant__study=study).select_related("prompt__participant")
                    .order_by("pk"))
        simulated = drawings.filter(prompt__participant__prolific_pid__startswith=Participant.SIMULATED_PID_PREFIX)
        exported = drawings.exclude(pk__in=simulated).filter(rejection="")
        by_category = {}
        for drawing in exported:
            by_category.setdefault(drawing.prompt.category, []).append(drawing)
        out = Path(opts["out"])
        paths = {category: out / f"{category}.{opts['format']}" for category in by_category}
        self.check_out(out, paths.values(), opts["force"])
        for category, chosen in sorted(by_category.items()):
            if opts["format"] == "npz":
                counts = self.write_npz(paths[category], chosen, opts)
            else:
                counts = self.write_ndjson(paths[category], chosen)
            fast = sum(d.too_fast for d in chosen)
            self.stdout.write(f"{paths[category]}: {len(chosen)} drawings ({counts}); {fast} drawn in under 1 s")
        self.stdout.write(f"Exported {exported.count()} accepted drawings of study {study.slug}; left out "
                          f"{drawings.exclude(pk__in=simulated).exclude(rejection='').count()} rejected and "
                          f"{simulated.count()} of simulated participants.")

    @staticmethod
    def check_out(out, paths, force):
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} is a file, not a folder")
        if not force:
            there = [str(path) for path in paths if path.exists()]
            if there:
                raise CommandError(f"{', '.join(there)} exist(s) already; pass --force to replace them")
        other = {".npz": ".ndjson", ".ndjson": ".npz"}
        clashing = [str(path) for path in paths if path.with_suffix(other[path.suffix]).exists()]
        if clashing:
            raise CommandError(f"{', '.join(clashing)}: the folder holds the same category in the other format, "
                               "which the data loader refuses; export into another folder")
        out.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def write_npz(path, drawings, opts):
        splits, keys = {s: [] for s in SPLITS}, {s: [] for s in SPLITS}
        for drawing in drawings:
            split = split_of(drawing.key_id, opts["seed"], opts["valid_fraction"], opts["test_fraction"])
            splits[split].append(drawing.stroke3())
            keys[split].append(drawing.key_id)
        with atomic_write(path) as temporary, open(temporary, "wb") as file:
            save_npz(file, splits, keys)
        return ", ".join(f"{len(splits[s])} {s}" for s in SPLITS)

    @staticmethod
    def write_ndjson(path, drawings):
        with atomic_write(path) as temporary:
            temporary.write_text("".join(json.dumps(ndjson_record(d), separators=(",", ":")) + "\n" for d in drawings),
                                 encoding="utf-8")
        counts = Counter(ndjson_split(d.key_id) for d in drawings)  # the loader's split, by key_id alone
        return ", ".join(f"{counts[s]} {s}" for s in SPLITS)
