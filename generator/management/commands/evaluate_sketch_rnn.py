"""evaluate_sketch_rnn: a checkpoint's losses on a split of its data, by this project's protocol and
by the reference's (the one behind the paper's figures), side by side."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generator.checkpoint import CheckpointError, load_model, resolve_device
from generator.data import SketchDataError, load_model_data
from generator.management.options import add_data_dir_argument, add_device_argument
from generator.reference_evaluation import evaluate_reference
from generator.train import evaluate

PROTOCOLS = ("both", "sketchlab", "reference")


class Command(BaseCommand):
    help = (
        "Evaluate a Sketch-RNN checkpoint on a split. The sketchlab protocol uses the paper's definitions on every "
        "drawing: L_R = (L_s + L_p) / N_max with the pen loss over all N_max steps, L_KL averaged over batch and "
        "latent dimensions, and loss = L_R + w_KL * max(L_KL, tolerance) at the final KL weight. The reference "
        "protocol computes what magenta's sketch_rnn reports (and the paper's Table 1): whole batches of the "
        "length-sorted split (the longest drawings that do not fill a batch are left out), -log(density + 1e-6), "
        "L_KL floored per batch, loss = L_R + kl_weight_start * L_KL. A table first; the last line printed is one "
        "JSON object (the sketchlab protocol's figures at its top level, the reference's under 'reference')."
    )

    def add_arguments(self, parser):
        parser.add_argument("--checkpoint", required=True, help="a .pt file written by train_sketch_rnn")
        parser.add_argument("--split", choices=["train", "valid", "test"], default="test",
                            help="which split to evaluate on (default test)")
        parser.add_argument("--protocol", choices=PROTOCOLS, default="both",
                            help="sketchlab (this project's), reference (magenta's), or both side by side (default)")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="the reference protocol's batch size (default: the model's, as the reference)")
        add_data_dir_argument(parser)
        add_device_argument(parser)
        parser.add_argument("--per-category", action="store_true", help="also evaluate each category on its own")

    def handle(self, *args, **opts):
        if opts["batch_size"] is not None and opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
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
        protocols = ("sketchlab", "reference") if opts["protocol"] == "both" else (opts["protocol"],)

        def losses(drawings, quiet=False):
            """The protocols' figures; the reference's are None where the drawings fill no batch,
            an error if it alone was asked for the whole split."""
            result = {}
            if "sketchlab" in protocols:
                result.update(evaluate(model, drawings, payload["n_max"], device))
            if "reference" in protocols:
                try:
                    result["reference"] = evaluate_reference(model, drawings, payload["n_max"], device,
                                                             opts["batch_size"])
                except ValueError as e:
                    if not quiet:
                        raise CommandError(str(e))
                    result["reference"] = None
            return result

        result = {"split": opts["split"], "step": payload["step"], "categories": list(config.categories),
                  "n_max": payload["n_max"], **losses(drawings, quiet=opts["protocol"] == "both")}
        if opts["per_category"] and len(config.categories) > 1:
            labels = data.labels[opts["split"]]
            result["per_category"] = {}
            for i, category in enumerate(config.categories):
                own = [d for d, label in zip(drawings, labels) if label == i]
                # A category without drawings in this split (all filtered out) has no losses.
                result["per_category"][category] = losses(own, quiet=True) if own else None
        self.write_table(result, protocols, len(drawings), config, opts["batch_size"] or config.batch_size)
        self.stdout.write(json.dumps(result))

    def write_table(self, result, protocols, total, config, batch_size):
        """The protocols' figures in columns, each saying what it computes."""
        columns = {}
        if "sketchlab" in protocols:
            columns["sketchlab"] = self.column(result, f"all {total}", "", f"L_R + {config.kl_weight:g} "
                                               f"max(L_KL, {config.kl_tolerance:g})")
        reference = result.get("reference")
        if reference:
            columns["reference"] = self.column(reference, f"{reference['n']} (whole batches, shortest first)",
                                               f" (floored at {config.kl_tolerance:g} per batch)",
                                               f"L_R + {config.kl_weight_start:g} L_KL")
        elif "reference" in protocols:
            self.stdout.write(f"The reference protocol evaluates whole batches of {batch_size} drawings, more "
                              f"than the split's {total}: give --batch-size to compare.")
        self.stdout.write(f"{result['split']} split of {', '.join(result['categories'])}, step {result['step']}, "
                          f"N_max {result['n_max']}")
        self.stdout.write(f"{'':18s}" + "".join(f"{name:46s}" for name in columns))
        for row in next(iter(columns.values())):
            self.stdout.write(f"{row:18s}" + "".join(f"{column[row]:46s}" for column in columns.values()))

    @staticmethod
    def column(losses, drawings, kl_note, loss_formula):
        return {
            "drawings": drawings,
            "L_R": f"{losses['L_R']:.4f}",
            "L_KL": "-" if losses["L_KL"] is None else f"{losses['L_KL']:.4f}{kl_note}",
            "loss": f"{losses['loss']:.4f} ({loss_formula})",
            "log-sigma clamp": f"changed {losses['clamped']:.3%} of the values",
        }
