"""train_sketch_rnn: train a Sketch-RNN, or resume a run, in one process or data-parallel in several."""

import argparse
import signal
import sys
from dataclasses import replace
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generator import distributed
from generator.checkpoint import CheckpointError, resolve_device
from generator.data import SketchDataError, available_categories, data_folders, load_sketch_data
from generator.management.options import (add_data_dir_argument, add_device_argument, check_seed, parse_categories,
                                         parse_overrides)
from generator.model import CELLS, PRECISIONS, PRESETS, REFERENCE, make_config
from generator.train import Run, saved_settings


def at_least_1(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def named(categories, most=5):
    """The categories, or for a prior of hundreds their count and the first and last."""
    if len(categories) <= most:
        return ",".join(categories)
    return f"{len(categories)} categories: {categories[0]} ... {categories[-1]}"


class Command(BaseCommand):
    help = (
        "Train a Sketch-RNN on Quick, Draw! categories. Writes best.pt (lowest validation loss), "
        "last.pt (to resume), metrics.csv and loss.png into --out. Ctrl-C saves last.pt and stops; "
        "--resume continues from it up to --steps. Trains data-parallel when started by torchrun, "
        "and on the CPU in one process per core (see --threads)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--categories", required=True, help="comma-separated categories, e.g. pig,face; 'all': every category on the data search path")
        parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                            help="model size: 'paper' (enc 256, dec 512, z 128) or 'cpu' (enc 128, dec 256, z 64). Default: cpu")
        parser.add_argument("--cell", choices=CELLS, default=None,
                            help="layer_norm: layer-normalised LSTM with recurrent dropout (for small datasets); "
                                 "lstm: fused plain LSTM (faster). Default: layer_norm")
        parser.add_argument("--unconditional", action="store_true", help="decoder only: no encoder, no latent code")
        parser.add_argument("--precision", choices=PRECISIONS, default=None,
                            help="bf16: the training passes' recurrent and output matmuls in bfloat16 (the losses, "
                                 "the optimiser and validation stay in fp32). Default: fp32")
        parser.add_argument("--steps", type=at_least_1, default=10000, help="total number of training steps (default 10000)")
        parser.add_argument("--eval-every", type=int, default=None, help="validate and save every N steps (default 500)")
        parser.add_argument("--out", default=None, help="run folder (default runs/<categories>-<preset>)")
        add_device_argument(parser)
        parser.add_argument("--seed", type=int, default=None,
                            help="seed of the weights, batches, augmentation and dropout (default 0; a resumed run "
                                 "keeps the one it was started with)")
        start = parser.add_mutually_exclusive_group()
        start.add_argument("--resume", action="store_true",
                           help="continue from <out>/last.pt with the settings it was started with (a flag or "
                                "--set that disagrees with them is refused)")
        start.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                           help="start from this checkpoint's weights instead of random ones, e.g. the best.pt of a run "
                                "on more categories, to fine-tune it on --categories; the model's sizes and cell must "
                                "match, while steps, schedules and optimiser start afresh")
        add_data_dir_argument(parser)
        parser.add_argument("--threads", type=at_least_1, default=None,
                            help="CPU cores to train on (default: all). On the CPU the command starts one training "
                                 "process per core (with at least 25 drawings of each batch), as torchrun would; "
                                 "under torchrun, the cores are shared among its processes on this machine")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override one hyper-parameter of the preset, e.g. --set recurrent_dropout=0.2 "
                                 "--set augment_stroke_prob=0.2 (repeatable; keys are generator.model.Config's); "
                                 "--set faithful=true trains as magenta's sketch_rnn does wherever this project's "
                                 "defaults depart from it (generator.model.REFERENCE; see benchmarks/README.md)")

    def run_from_argv(self, argv):
        self.argv = argv  # the command line, to start it again in each process of a group
        super().run_from_argv(argv)

    def handle(self, *args, **opts):
        if opts["seed"] is not None:
            check_seed(opts["seed"])
        data_path = str(opts["data_dir"] or settings.QUICKDRAW_DATA_DIR)
        try:
            categories = (available_categories(data_folders(data_path)) if opts["categories"] == "all"
                          else parse_categories(opts["categories"]))
            device = resolve_device(opts["device"])
            given = self.settings_given(opts)
        except (SketchDataError, ValueError) as e:
            raise CommandError(str(e))
        preset = opts["preset"] or "cpu"
        out = Path(opts["out"] or Path("runs") / f"{opts['categories'] if opts['categories'] == 'all' else '-'.join(categories)}-{preset}")
        faithful = given.pop("faithful", False)
        try:
            if opts["resume"]:
                # A resumed run keeps its saved settings (Run refuses flags that disagree) and data scale.
                config, scale = saved_settings(out)
                config = replace(config, categories=tuple(categories), **{**(REFERENCE if faithful else {}), **given})
            else:
                config, scale = make_config(preset, faithful, categories=tuple(categories), **given), None
        except CheckpointError as e:
            raise CommandError(f"cannot resume: {e}")
        except ValueError as e:
            raise CommandError(str(e))

        cores = opts["threads"] or distributed.cpu_cores()
        processes = distributed.processes_for(cores, config.batch_size)
        if device.type == "cpu" and processes > 1 and not distributed.launched() and hasattr(self, "argv"):
            sys.exit(distributed.launch(self.argv, processes))
        if opts["threads"] or distributed.launched():
            torch.set_num_threads(distributed.threads_per_process(cores))
        device = distributed.join(device)
        try:
            try:
                data = load_sketch_data(categories, data_path, config.max_seq_len, factor=scale,
                                        simplify_epsilon=config.simplify_epsilon)
                run = Run(config, data, out, device, seed=opts["seed"], resume=opts["resume"], init_from=opts["init_from"])
            except (SketchDataError, CheckpointError, ValueError) as e:
                raise CommandError(str(e))
            except OSError as e:  # --out names a file, or a folder that cannot be written
                raise CommandError(f"cannot use {out} as the run folder: {e.strerror or e}")
            if run.step >= opts["steps"]:
                self.say(run, f"{out} is already at step {run.step} (asked for {opts['steps']}); nothing to do.")
                return
            self.say(run, self.describe(run, out, opts["steps"]))
            self.train(run, out, opts["steps"])
        finally:
            distributed.leave()

    def settings_given(self, opts):
        """The settings this command line asks for; with --resume each must agree with the saved run's."""
        given = dict(PRESETS[opts["preset"]]) if opts["preset"] else {}
        for key, value in (("cell", opts["cell"]), ("eval_every", opts["eval_every"]), ("precision", opts["precision"])):
            if value is not None:
                given[key] = value
        if opts["unconditional"]:
            given["conditional"] = False
        return {**given, **parse_overrides(opts["set"])}

    def say(self, run, text):
        if run.rank == 0:
            self.stdout.write(text)

    def describe(self, run, out, steps):
        config, data = run.config, run.data
        n_params = sum(p.numel() for p in run.model.parameters())
        where = f"{run.device}" if run.world_size == 1 else f"{run.world_size} processes ({run.device.type})"
        text = (
            f"Training {named(config.categories)} ({len(data.splits['train'])} train / {len(data.splits['valid'])} valid "
            f"drawings, scale factor {data.scale_factor:.3f}, n_max {data.n_max}) on {where}: enc {config.enc_size}, "
            f"dec {config.dec_size}, z {config.z_size}, {config.cell} cell, {config.precision}, {n_params / 1e6:.2f}M "
            f"parameters, {'faithful to the reference, ' if config.faithful else ''}step {run.step} -> {steps}, into {out}"
        )
        if run.init_from:
            text += (f", from the weights of {run.init_from['file']} ({named(run.init_from['categories'])}, "
                     f"step {run.init_from['step']})")
        if run.saved_world_size not in (None, run.world_size):
            text += (f"\nThe run was trained in {run.saved_world_size} process(es) before: it goes on, but splits its "
                     f"batches otherwise than it did, so not exactly as it would have gone on there.")
        return text

    def train(self, run, out, steps):
        def stop_after_this_step(signum, frame):
            # The step in progress finishes first, so that last.pt holds weights that match its
            # step; in one process a second signal stops at once and leaves last.pt as it was. In a
            # group a second signal is most often the same stop again (a launcher passes each signal
            # on, SLURM signals every process of a job as well), and one rank leaving mid-step would
            # break the others' step: it stops after the step too, and the launcher kills a group
            # that does not stop.
            if run.stop_requested and run.world_size == 1:
                raise KeyboardInterrupt
            run.request_stop()

        # SIGTERM (e.g. a scheduler or torchrun stopping the job) saves like Ctrl-C does, and so does
        # SIGINT when the shell started the run in the background with SIGINT ignored (nohup ... &).
        signal.signal(signal.SIGTERM, stop_after_this_step)
        signal.signal(signal.SIGINT, stop_after_this_step)
        bar = (tqdm(total=steps, initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr, mininterval=1.0)
               if run.rank == 0 else None)

        def progress(step, postfix):
            bar.update(1)
            bar.set_postfix(postfix, refresh=False)

        def kept():
            return (f"{out / 'last.pt'} holds step {run.saved_step}, the last good checkpoint"
                    if run.saved_step is not None else "no checkpoint was saved")

        try:
            run.train(steps, progress if bar else None)
        except KeyboardInterrupt:
            if bar:
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
            raise CommandError(f"training diverged: {e}; {kept()}")
        except RuntimeError as e:
            if run.world_size == 1:
                raise
            # Another rank died or hung: the collective operations fail on the ranks that remain.
            raise CommandError(f"training process {run.rank} of {run.world_size} stopped at step {run.step + 1}: "
                               f"{str(e).strip().splitlines()[0]} (has another process failed? see its messages); {kept()}")
        finally:
            if bar:
                bar.close()
        self.say(run, f"Done: step {run.step} in {run.seconds / 60:.1f} min; best validation loss {run.best_loss:.4f}. "
                      f"Files: {out / 'best.pt'}, {out / 'last.pt'}, {out / 'metrics.csv'}, {out / 'loss.png'}")
