"""The figures of a trained model's card, measured the same way for every model: the data files it
saw and how many drawings of each, the kept step and the wall time to it, test L_R / L_KL pooled and
per test file, and the shares of samples that never end or are empty at three temperatures.

    QUICKDRAW_DATA_DIR=quickdraw:quickdraw_spg python benchmarks/model_card.py runs/ten/pig runs/ten/face \
        [--n 500] [--temperatures 0.25,0.5,0.8]

Each argument is a run folder (best.pt, metrics.csv). Prints markdown tables.
"""

import argparse
import csv
import os
from pathlib import Path

import numpy as np
from _common import model_samples

from generator.checkpoint import load_model
from generator.data import load_model_data
from generator.train import evaluate


def wall_minutes(run, step):
    """Minutes of training to `step` by the run's metrics.csv (its row of that step)."""
    with open(run / "metrics.csv", newline="") as f:
        rows = {int(r["step"]): float(r["seconds"]) for r in csv.DictReader(f)}
    return rows[step] / 60 if step in rows else float("nan")


def test_losses(model, payload, search_path):
    """{name: (L_R, L_KL, n)}: pooled over every test file, and per file."""
    data = load_model_data(model.config, search_path, payload["scale_factor"])
    drawings = data.splits["test"]
    losses = {"all test files": evaluate(model, drawings, payload["n_max"], "cpu")}
    start = 0
    for described in data.files:
        part = drawings[start:start + described["test"]]
        start += described["test"]
        if part and len(data.files) > 1:
            losses[described["file"]] = evaluate(model, part, payload["n_max"], "cpu")
    return data, {name: (r["L_R"], r["L_KL"], r["n"]) for name, r in losses.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("--data-dir", default=os.environ.get("QUICKDRAW_DATA_DIR"),
                        help="data search path dir1:dir2 (default QUICKDRAW_DATA_DIR)")
    parser.add_argument("--n", type=int, default=500, help="unconditional samples per temperature")
    parser.add_argument("--temperatures", default="0.25,0.5,0.8")
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set QUICKDRAW_DATA_DIR or --data-dir to the data search path")
    temperatures = [float(t) for t in args.temperatures.split(",")]
    data_rows, loss_rows, sample_rows = [], [], []
    for run in map(Path, args.runs):
        model, payload = load_model(run / "best.pt")
        name = ",".join(model.config.categories)
        data, losses = test_losses(model, payload, args.data_dir)
        files = "; ".join(f"{f['file']} {f['train']}/{f['valid']}/{f['test']}" for f in data.files)
        valid = payload.get("valid") or {}
        data_rows.append(f"| {name} | {files} | {payload['scale_factor']:.2f} | {payload['step']} | "
                         f"{wall_minutes(run, payload['step']):.0f} | {valid.get('L_R', float('nan')):.3f} / "
                         f"{valid.get('L_KL', float('nan')):.3f} |")
        for split_name, (l_r, l_kl, n) in losses.items():
            loss_rows.append(f"| {name} | {split_name} | {n} | **{l_r:.3f}** / {l_kl:.3f} |")
        cells = []
        for temperature in temperatures:
            samples = model_samples(model, payload, args.n, temperature)
            never = 1 - float(np.mean(samples.ended))
            empty = float(np.mean([len(s) == 0 for s in samples.strokes]))
            cells.append(f"{never:.1%} / {empty:.1%}")
        sample_rows.append(f"| {name} | " + " | ".join(cells) + " |")
    print("| model | data files, train/valid/test drawings | scale factor | kept step | minutes to it | valid L_R / L_KL |")
    print("|---|---|---|---|---|---|")
    print("\n".join(data_rows))
    print("\n| model | test split | drawings | test L_R / L_KL |\n|---|---|---|---|")
    print("\n".join(loss_rows))
    print(f"\n{args.n} unconditional samples, seed 0: never end / empty\n")
    print("| model | " + " | ".join(f"tau {t}" for t in temperatures) + " |")
    print("|---|" + "---|" * len(temperatures))
    print("\n".join(sample_rows))


if __name__ == "__main__":
    main()
