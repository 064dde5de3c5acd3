"""preview_sketches: a contact sheet of real drawings, of a model's samples, or of an interpolation."""

import math
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generator.data import SketchDataError, load_category, load_model_data
from generator.management.options import (add_data_dir_argument, add_device_argument, add_temperature_rule_argument,
                                         check_seed)
from generator.render import contact_sheet, sketch_png


class Command(BaseCommand):
    help = (
        "Write a contact sheet (grid PNG) of sketches: real drawings of a dataset with --category, "
        "samples of a trained model with --checkpoint, or with --interpolate its samples along the line between "
        "the latent codes of two real drawings. All go through the renderer participants see."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--category", help="show real drawings of this category")
        source.add_argument("--checkpoint", help="show samples of this checkpoint")
        parser.add_argument("--out", required=True, help="PNG file to write")
        parser.add_argument("--interpolate", action="store_true",
                            help="with --checkpoint of a conditional model: two drawings of its categories' --split "
                                 "(chosen by --seed) at the ends of the grid, and between them --count samples "
                                 "decoded from codes evenly spaced from the first drawing's code to the second's")
        parser.add_argument("--count", type=int, default=64, help="number of sketches (default 64)")
        parser.add_argument("--columns", type=int, default=8, help="sketches per row (default 8)")
        parser.add_argument("--split", choices=["train", "valid", "test"], default="test", help="real drawings (and --interpolate's two): which split (default test)")
        parser.add_argument("--temperature", type=float, default=0.5, help="samples: temperature (default 0.5; 0 = greedy)")
        add_temperature_rule_argument(parser)
        parser.add_argument("--seed", type=int, default=0)
        add_data_dir_argument(parser)
        add_device_argument(parser)

    def handle(self, *args, **opts):
        if opts["count"] < 1:
            raise CommandError("--count must be at least 1")
        if opts["temperature"] < 0:
            raise CommandError("--temperature must be 0 or more")
        if not math.isfinite(opts["temperature"]):
            raise CommandError(f"--temperature must be a finite number, not {opts['temperature']}")
        check_seed(opts["seed"])
        if opts["category"] == "":
            raise CommandError("--category needs a category name, e.g. --category pig")
        if opts["interpolate"] and opts["checkpoint"] is None:
            raise CommandError("--interpolate needs --checkpoint (a model to encode and decode with)")
        if opts["interpolate"] and opts["count"] < 2:
            raise CommandError("--interpolate needs --count of at least 2 (the codes at both ends)")
        if opts["category"] is not None:
            drawings, captions = self.real_drawings(opts)
        else:
            drawings, captions = self.generated_drawings(opts)
        out = Path(opts["out"])
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(contact_sheet([sketch_png(d) for d in drawings], columns=opts["columns"], captions=captions))
        except OSError as error:
            raise CommandError(f"Could not write {out}: {error}") from None
        self.stdout.write(f"wrote {len(drawings)} sketches to {out}")

    def real_drawings(self, opts):
        try:
            split = load_category(opts["category"], opts["data_dir"] or settings.QUICKDRAW_DATA_DIR)[opts["split"]]
        except SketchDataError as e:
            raise CommandError(str(e))
        rng = np.random.default_rng(opts["seed"])
        indices = np.sort(rng.choice(len(split), size=min(opts["count"], len(split)), replace=False))
        return [split[i] for i in indices], [f"{opts['split']} {i}" for i in indices]

    def generated_drawings(self, opts):
        import torch

        from generator.checkpoint import CheckpointError, load_model, resolve_device
        from generator.sample import sample

        try:
            device = resolve_device(opts["device"])
            model, payload = load_model(opts["checkpoint"], device)
        except (CheckpointError, ValueError) as e:
            raise CommandError(str(e))
        generator = torch.Generator(device=device).manual_seed(opts["seed"])
        if opts["interpolate"]:
            ends, z = self.interpolation_ends(opts, model, payload, generator, device)
            samples = sample(model, z=z, temperature=opts["temperature"], scale_factor=payload["scale_factor"],
                             generator=generator, device=device, temperature_rule=opts["temperature_rule"])
            weights = np.linspace(0, 1, len(z))
            drawings = [ends[0][1], *samples.strokes, ends[1][1]]
            captions = [ends[0][0], *(f"{w:.2f}" if ended else f"{w:.2f} no end"
                                      for w, ended in zip(weights, samples.ended)), ends[1][0]]
        else:
            samples = sample(model, n=opts["count"], temperature=opts["temperature"],
                             scale_factor=payload["scale_factor"], generator=generator, device=device,
                             temperature_rule=opts["temperature_rule"])
            drawings = samples.strokes
            captions = ["" if ended else "no end" for ended in samples.ended]
        self.stdout.write(f"{int((~samples.ended).sum())} of {len(samples)} samples did not end within "
                          f"{model.config.max_seq_len} points")
        return drawings, captions

    def interpolation_ends(self, opts, model, payload, generator, device):
        """Two drawings of the model's data, chosen by --seed, as (caption, drawing in data units)
        each, and --count codes evenly spaced from the first's code to the second's."""
        from generator.sample import encode, interpolate

        if not model.config.conditional:
            raise CommandError(f"--interpolate needs a conditional model; {opts['checkpoint']} has no encoder")
        try:
            split = load_model_data(model.config, opts["data_dir"] or settings.QUICKDRAW_DATA_DIR,
                                    payload["scale_factor"]).splits[opts["split"]]
        except SketchDataError as e:
            raise CommandError(str(e))
        if len(split) < 2:
            raise CommandError(f"--interpolate needs two drawings; the {opts['split']} split has {len(split)}")
        indices = np.random.default_rng(opts["seed"]).choice(len(split), size=2, replace=False)
        codes = encode(model, [split[i] for i in indices], generator=generator, device=device)
        to_data_units = np.array([payload["scale_factor"], payload["scale_factor"], 1], dtype=np.float32)
        ends = [(f"{opts['split']} {i}", split[i] * to_data_units) for i in indices]
        return ends, interpolate(codes[0], codes[1], opts["count"])
