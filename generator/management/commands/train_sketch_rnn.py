"""train_sketch_rnn: train a Sketch-RNN, or resume a run."""

import signal
import sys
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generator.checkpoint import CheckpointError, load_training_checkpoint, resolve_device
from generator.data import SketchDataError, available_categories, data_folders, load_sketch_data
from generator.management.options import (add_data_dir_argument, add_device_argument, check_seed, parse_categories,
                                         parse_overrides)
from generator.model import CELLS, PRESETS, Config, make_config
from generator.train import Run


class Command(BaseCommand):
    help = (
        "Train a Sketch-RNN on Quick, Draw! categories. Writes best.pt (lowest validation loss), "
        "last.pt (to resume), metrics.csv and loss.png into --out. Ctrl-C saves last.pt and stops; "
        "--resume continues from it up to --steps."
    )

    def add_arguments(self, parser):
        parser.add_argument("--categories", required=True, help="comma-separated categories, e.g. pig,face; 'all': every category on the data search path")
        parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                            help="model size: 'paper' (enc 256, dec 512, z 128) or 'cpu' (enc 128, dec 256, z 64). Default: cpu")
        parser.add_argument("--cell", choices=CELLS, default=None,
                            help="layer_norm: layer-normalised LSTM with recurrent dropout (for small datasets); "
                                 "lstm: fused plain LSTM (faster). Default: layer_norm")
        parser.add_argument("--unconditional", action="store_true", help="decoder only: no encoder, no latent code")
        parser.add_argument("--steps", type=int, default=10000, help="total number of training steps (default 10000)")
        parser.add_argument("--eval-every", type=int, default=None, help="validate and save every N steps (default 500)")
        parser.add_argument("--out", default=None, help="run folder (default runs/<categories>-<preset>)")
        add_device_argument(parser)
        parser.add_argument("--seed", type=int, default=None,
                            help="seed of the weights, batches, augmentation and dropout (default 0; a resumed run "
                                 "keeps the one it was started with)")
        parser.add_argument("--resume", action="store_true",
                            help="continue from <out>/last.pt with the settings it was started with (a flag or "
                                 "--set that disagrees with them is refused)")
        parser.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                            help="start from this checkpoint's weights instead of random ones, e.g. the best.pt of a run "
                                 "on more categories, to fine-tune it on --categories; the model's sizes and cell must "
                                 "match, while steps, schedules and optimiser start afresh")
        add_data_dir_argument(parser)
        parser.add_argument("--threads", type=int, default=None,
                            help="CPU threads for torch (default: torch's choice, one per core); on the CPU each "
                                 "batch is split into one shard per thread (at least 25 drawings each), worked on side "
                                 "by side, which trains faster than all threads on the whole batch")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override one hyper-parameter of the preset, e.g. --set recurrent_dropout=0.2 "
                                 "--set augment_stroke_prob=0.2 (repeatable; keys are generator.model.Config's); "
                                 "--set faithful=true trains as magenta's sketch_rnn does wherever this project's "
                                 "defaults depart from it (generator.model.REFERENCE; see benchmarks/README.md)")

    def handle(self, *args, **opts):
        if opts["steps"] < 1:
            raise CommandError("--steps must be at least 1")
        if opts["eval_every"] is not None and opts["eval_every"] < 1:
            raise CommandError("--eval-every must be at least 1")
        if opts["threads"] is not None:
            if opts["threads"] < 1:
                raise CommandError("--threads must be at least 1")
            torch.set_num_threads(opts["threads"])
        if opts["seed"] is not None:
            check_seed(opts["seed"])
        data_path = str(opts["data_dir"] or settings.QUICKDRAW_DATA_DIR)
        if opts["categories"] == "all":
            try:
                categories = available_categories(data_folders(data_path))
            except SketchDataError as e:
                raise CommandError(str(e))
        else:
            categories = parse_categories(opts["categories"])
        preset = opts["preset"] or "cpu"
        out = Path(opts["out"] or Path("runs") / f"{opts['categories'] if opts['categories'] == 'all' else '-'.join(categories)}-{preset}")
        try:
            device = resolve_device(opts["device"])
        except ValueError as e:
            raise CommandError(str(e))
        try:
            overrides = parse_overrides(opts["set"])
        except ValueError as e:
            raise CommandError(str(e))
        # The settings this command line asks for; with --resume each must agree with the saved run's.
        given = dict(PRESETS[opts["preset"]]) if opts["preset"] else {}
        for key, value in (("cell", opts["cell"]), ("eval_every", opts["eval_every"])):
            if value is not None:
                given[key] = value
        if opts["unconditional"]:
            given["conditional"] = False
        given.update(overrides)
        try:
            config = make_config(preset, categories=tuple(categories), **given)
        except ValueError as e:
            raise CommandError(str(e))
        scale = None
        if opts["resume"] and opts["init_from"]:
            raise CommandError("--init-from starts a new run and --resume continues one; pass only one of them")
        if opts["resume"]:
            try:
                saved = load_training_checkpoint(out / "last.pt")
            except CheckpointError as e:
                raise CommandError(f"cannot resume: {e}")
            try:
                saved_config = Config.from_dict(saved["config"])
            except (KeyError, TypeError, ValueError) as e:
                raise CommandError(f"cannot resume: {out / 'last.pt'} holds a config this version cannot read ({e})")
            if list(saved_config.categories) != categories:
                raise CommandError(f"cannot resume: {out / 'last.pt'} was trained on "
                                   f"{','.join(saved_config.categories)}, not {','.join(categories)}")
            # A resumed run keeps its saved settings; a flag that disagrees would otherwise be ignored.
            changed = [f"{key}={value} (saved: {getattr(saved_config, key)})"
                       for key, value in given.items() if getattr(saved_config, key) != value]
            if opts["seed"] is not None and opts["seed"] != saved["seed"]:
                changed.append(f"--seed {opts['seed']} (saved: {saved['seed']})")
            if changed:
                raise CommandError(f"cannot resume with other settings: {', '.join(changed)}; "
                                   "a resumed run keeps those it was started with")
            config, scale = saved_config, saved["scale_factor"]
        elif (out / "last.pt").exists():
            raise CommandError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        try:
            data = load_sketch_data(categories, data_path,
                                    config.max_seq_len, factor=scale, simplify_epsilon=config.simplify_epsilon)
            run = Run(config, data, out, device, seed=opts["seed"] or 0, resume=opts["resume"], init_from=opts["init_from"])
        except (SketchDataError, CheckpointError) as e:
            raise CommandError(str(e))
        except OSError as e:  # --out names a file, or a folder that cannot be written
            raise CommandError(f"cannot use {out} as the run folder: {e.strerror or e}")

        if run.step >= opts["steps"]:
            self.stdout.write(f"{out} is already at step {run.step} (asked for {opts['steps']}); nothing to do.")
            return
        n_params = sum(p.numel() for p in run.model.parameters())
        self.stdout.write(
            f"Training {','.join(categories)} ({len(data.splits['train'])} train / {len(data.splits['valid'])} valid drawings, "
            f"scale factor {data.scale_factor:.3f}, n_max {data.n_max}) on {device}: enc {config.enc_size}, "
            f"dec {config.dec_size}, z {config.z_size}, {config.cell} cell, {n_params / 1e6:.2f}M parameters, "
            f"{'faithful to the reference, ' if config.faithful else ''}step {run.step} -> {opts['steps']}, into {out}"
            + (f", from the weights of {run.init_from['file']} ({','.join(run.init_from['categories'])}, "
               f"step {run.init_from['step']})" if run.init_from else "")
        )

        def stop_after_this_step(signum, frame):
            # The step in progress finishes first, so that last.pt holds weights that match its
            # step; a second signal stops at once and leaves last.pt as it was.
            if run.stop_requested:
                raise KeyboardInterrupt
            run.request_stop()

        # SIGTERM (e.g. a scheduler stopping the job) saves like Ctrl-C does, and so does SIGINT
        # when the shell started the run in the background with SIGINT ignored (nohup ... &).
        signal.signal(signal.SIGTERM, stop_after_this_step)
        signal.signal(signal.SIGINT, stop_after_this_step)
        bar = tqdm(total=opts["steps"], initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr,
                   mininterval=1.0)

        def progress(step, postfix):
            bar.update(1)
            bar.set_postfix(postfix, refresh=False)

        try:
            run.train(opts["steps"], progress)
        except KeyboardInterrupt:
            bar.close()
            if run.saved_step == run.step:
                self.stderr.write(f"Interrupted: saved step {run.step} to {out / 'last.pt'}; continue with --resume.")
            elif run.saved_step is not None:
                self.stderr.write(f"Interrupted in the middle of step {run.step + 1}: {out / 'last.pt'} still holds "
                                  f"step {run.saved_step}; continue with --resume.")
            else:
                self.stderr.write(f"Interrupted in the middle of step {run.step + 1}, before the first checkpoint: "
                                  "nothing was saved.")
            sys.exit(130)
        except FloatingPointError as e:
            bar.close()
            kept = (f"{out / 'last.pt'} holds step {run.saved_step}, the last good checkpoint" if run.saved_step is not None
                    else "no checkpoint was saved before it")
            raise CommandError(f"training diverged: {e}; {kept}")
        bar.close()
        self.stdout.write(
            f"Done: step {run.step} in {run.seconds / 60:.1f} min; best validation loss {run.best_loss:.4f}. "
            f"Files: {out / 'best.pt'}, {out / 'last.pt'}, {out / 'metrics.csv'}, {out / 'loss.png'}"
        )
