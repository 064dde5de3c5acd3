"""What fidelity to the reference costs: this project's defaults against the faithful mode (and
either with one setting of generator.model.REFERENCE changed), trained on one category for the same
steps from the same seed. benchmarks/README.md keeps the figures.

    python benchmarks/fidelity.py [--steps 1000] [--configs default,faithful] [--timing-steps 30]
        [--preset cpu] [--category pig] [--seed 0] [--threads N] [--out DIR]

Configurations: "default", "faithful", "default+KEY" (the defaults with REFERENCE's KEY) and
"faithful-KEY" (the faithful mode with the default's KEY), e.g. default+batching; any of them with
"@bf16" trains with --precision bf16 (what mixed precision costs in loss), e.g. default,default@bf16.

First, training speed: --timing-steps steps of each configuration, taking turns in rounds (so a slow
spell of the machine does not fall on one alone), in sketches per second. Then each configuration is
trained for --steps steps (validating every 250): the validation loss of its last step by this
project's protocol and by the reference's, the share of 500 unconditional samples of its best.pt that
never end at tau 0.5 under each temperature rule, and the share of log-sigma values its clamp changed
in training and in validation. --steps 0 or --timing-steps 0 skips that part.
"""

import argparse
import csv
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from _common import data_dir, model_samples

from generator.checkpoint import load_model
from generator.data import load_sketch_data
from generator.model import PRECISIONS, REFERENCE, Config, make_config
from generator.reference_evaluation import evaluate_reference
from generator.train import Run


def config_named(name, preset, categories):
    """The Config a configuration name stands for (see the module's docstring)."""
    name, at, precision = name.partition("@")
    base, sign, key = name.partition("+") if "+" in name else name.partition("-")
    if base not in ("default", "faithful") or (sign and key not in REFERENCE) or (at and precision not in PRECISIONS):
        raise SystemExit(f"unknown configuration '{name}': default, faithful, default+KEY or faithful-KEY with KEY one "
                         f"of {', '.join(REFERENCE)}, each optionally @{'/@'.join(PRECISIONS)}")
    defaults = {f.name: f.default for f in fields(Config)}
    change = {key: REFERENCE[key] if sign == "+" else defaults[key]} if sign else {}
    if at:
        change["precision"] = precision
    return make_config(preset, faithful=base == "faithful", categories=tuple(categories), eval_every=250, **change)


def timing(configs, data, steps, rounds, folder):
    """Sketches per second of each configuration's training steps, in rounds taken in turn."""
    runs = {name: Run(config, data, folder / f"timing-{name}", "cpu") for name, config in configs.items()}
    for run in runs.values():
        run.train_step()  # warm-up
    seconds = {name: 0.0 for name in runs}
    for chunk in np.array_split(range(steps), rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in chunk:
                run.train_step()
            seconds[name] += time.perf_counter() - start
    return {name: steps * runs[name].config.batch_size / seconds[name] for name in runs}


def train_and_measure(name, config, data, steps, folder, seed, samples=500):
    run = Run(config, data, folder / name, "cpu", seed=seed)
    started = time.perf_counter()
    run.train(steps)
    minutes = (time.perf_counter() - started) / 60
    with open(folder / name / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    model, payload = load_model(folder / name / "best.pt")
    # (Batches of the model's size, unless the split is smaller: the fixture files' is.)
    reference = evaluate_reference(run.validated_model, data.splits["valid"], data.n_max, "cpu",
                                   min(config.batch_size, len(data.splits["valid"])))
    never_end = {rule: 1 - model_samples(model, payload, samples, 0.5, temperature_rule=rule).ended.mean()
                 for rule in ("paper", "magenta")}
    return {"minutes": minutes, "valid_l_r": float(last["valid_l_r"]), "reference_l_r": reference["L_R"],
            "best_step": payload["step"], "never_end": never_end, "train_clamped": float(last["train_clamped"]),
            "valid_clamped": float(last["valid_clamped"])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each configuration")
    parser.add_argument("--configs", default="default,faithful")
    parser.add_argument("--timing-steps", type=int, default=30, help="timed steps of each configuration")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--category", default=None, help="default: pig (the fixture files' circle without data)")
    parser.add_argument("--seed", type=int, default=0, help="of the training runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="keep the runs' folders here (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder, categories = data_dir()
    category = args.category or categories[0]
    data = load_sketch_data([category], folder)
    configs = {name: config_named(name, args.preset, [category]) for name in args.configs.split(",")}
    print(f"{category} ({len(data.splits['train'])} training drawings, N_max {data.n_max}), {args.preset} preset, "
          f"{configs[next(iter(configs))].cell} cell, {torch.get_num_threads()} threads, seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        if args.timing_steps:
            rates = timing(configs, data, args.timing_steps, args.rounds, out)
            first = next(iter(rates.values()))
            for name, rate in rates.items():
                print(f"{name:28s} {rate:7.1f} sketches/s ({rate / first:.2f}x the first)")
        if args.steps:
            print(f"{'after ' + str(args.steps) + ' steps':28s} {'min':>5s} {'valid L_R':>9s} {'reference':>9s} "
                  f"{'best':>5s} {'never end (paper/magenta)':>26s} {'clamped (train/valid)':>22s}")
            for name, config in configs.items():
                r = train_and_measure(name, config, data, args.steps, out, args.seed)
                print(f"{name:28s} {r['minutes']:5.1f} {r['valid_l_r']:9.4f} {r['reference_l_r']:9.4f} "
                      f"{r['best_step']:5d} {r['never_end']['paper']:12.1%} / {r['never_end']['magenta']:<11.1%} "
                      f"{r['train_clamped']:10.2%} / {r['valid_clamped']:<9.2%}", flush=True)


if __name__ == "__main__":
    main()
