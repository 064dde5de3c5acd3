"""How often a trained model's samples are degenerate, per checkpoint and temperature: the share
that never end within max length, the share that are empty (the --reject-degenerate rule of
generate_samples), and the mean number of points.

Unconditional samples (z ~ N(0, I)) by default; with --mode conditional, each sample decodes the
code of one of the model's test drawings (taken in turn), as generate_samples --mode conditional does.

    python benchmarks/sample_quality.py fixtures/checkpoints/*.pt [--n 500] [--temperatures 0.2,0.5,0.8]
        [--mode conditional [--data-dir DIR]] [--temperature-rule magenta]
"""

import argparse
import time

import numpy as np
import torch
from _common import data_dir, model_samples, model_test_drawings

from generator.checkpoint import load_model
from generator.sample import is_degenerate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--n", type=int, default=500, help="samples per checkpoint and temperature")
    parser.add_argument("--temperatures", default="0.2,0.5,0.8")
    parser.add_argument("--temperature-rule", default="paper", help="paper or magenta (see generator/sample.py)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mode", choices=["unconditional", "conditional"], default="unconditional")
    parser.add_argument("--data-dir", default=None,
                        help="conditional: folder of <category>.npz (default QUICKDRAW_DATA_DIR)")
    args = parser.parse_args()
    temperatures = [float(t) for t in args.temperatures.split(",")]
    folder = (args.data_dir or data_dir()[0]) if args.mode == "conditional" else None
    print(f"{args.n} {args.mode} samples per row on {args.device}, the {args.temperature_rule} temperature rule")
    print(f"{'checkpoint':28s} {'tau':>4s} {'never end':>9s} {'empty':>6s} {'degenerate':>10s} {'points':>7s} {'s':>6s}")
    for path in args.checkpoints:
        model, payload = load_model(path, args.device)
        drawings = model_test_drawings(model, payload, folder) if folder else None
        for temperature in temperatures:
            start = time.perf_counter()
            samples = model_samples(model, payload, args.n, temperature, drawings, args.device, args.temperature_rule)
            seconds = time.perf_counter() - start
            empty = np.mean([len(s) == 0 for s in samples.strokes])
            degenerate = np.mean([is_degenerate(s, e) for s, e in zip(samples.strokes, samples.ended)])
            points = np.mean([len(s) for s in samples.strokes])
            print(f"{path[-28:]:28s} {temperature:4.1f} {1 - samples.ended.mean():9.1%} {empty:6.1%} "
                  f"{degenerate:10.1%} {points:7.1f} {seconds:6.1f}")


if __name__ == "__main__":
    main()
