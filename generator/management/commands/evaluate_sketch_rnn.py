"""evaluate_sketch_rnn: a checkpoint's losses on a split of its data, as the paper defines them."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generator.checkpoint import CheckpointError, load_model, resolve_device
from generator.data import SketchDataError, load_model_data
from generator.management.options import add_data_dir_argument, add_device_argument
from generator.train import evaluate


class Command(BaseCommand):
    help = (
        "Evaluate a Sketch-RNN checkpoint on a split with the paper's definitions: L_R = (L_s + L_p) / N_max "
        "with the pen loss over all N_max steps, L_KL averaged over batch and latent dimensions, and "
        "loss = L_R + w_KL * max(L_KL, tolerance) at the final KL weight. The last line printed is one JSON object."
    )

    def add_arguments(self, parser):
        parser.add_argument("--checkpoint", required=True, help="a .pt file written by train_sketch_rnn")
        parser.add_argument("--split", choices=["train", "valid", "test"], default="test",
                            help="which split to evaluate on (default test)")
        add_data_dir_argument(parser)
        add_device_argument(parser)
        parser.add_argument("--per-category", action="store_true", help="also evaluate each category on its own")

    def handle(self, *args, **opts):
        try:
            device = resolve_device(opts["device"])
            model, payload = load_model(opts["checkpoint"], device)
            config = model.config
            data = load_model_data(config, opts["data_dir"] or settings.QUICKDRAW_DATA_DIR, payload["scale_factor"])
        except (CheckpointError, SketchDataError, ValueError) as e:
            raise CommandError(str(e))
        drawings = data.splits[opts["split"]]
        if not drawings:
            raise CommandError(f"the {opts['split']} split of {', '.join(config.categories)} has no drawings")
        result = evaluate(model, drawings, payload["n_max"], device)
        result.update(split=opts["split"], step=payload["step"], categories=list(config.categories))
        if opts["per_category"] and len(config.categories) > 1:
            labels = data.labels[opts["split"]]
            result["per_category"] = {}
            for i, category in enumerate(config.categories):
                own = [d for d, label in zip(drawings, labels) if label == i]
                # A category without drawings in this split (all filtered out) has no losses.
                result["per_category"][category] = evaluate(model, own, payload["n_max"], device) if own else None
        self.stdout.write(json.dumps(result))
