"""Sketches per second when sampling many at once versus one at a time (goal: 1000 paper-preset
sketches in under 15 s on CPU). Untrained weights, with the end-of-sketch logit switched off so
that every sample runs the full 250 steps: the worst case.

    python benchmarks/sample_throughput.py [--preset paper] [--cell layer_norm] [--checkpoint FILE]
"""

import argparse
import time

import torch
from _common import ROOT  # noqa: F401  (puts the project on the path)

from generator.checkpoint import load_model
from generator.model import SketchRNN, make_config
from generator.sample import sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--cell", default="layer_norm")
    parser.add_argument("--checkpoint", help="measure a trained model instead (its sketches end on their own)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--one-at-a-time", type=int, default=10, help="sketches to time one by one")
    args = parser.parse_args()
    if args.checkpoint:
        model, _ = load_model(args.checkpoint, args.device)
        name = args.checkpoint
    else:
        torch.manual_seed(0)
        model = SketchRNN(make_config(args.preset, cell=args.cell)).to(args.device)
        with torch.no_grad():
            model.out.bias[2] = -1e4  # pen logits come first: p1, p2, p3 (end of sketch)
        name = f"{args.preset} preset, {args.cell} cell, untrained, never ending"
    print(f"{name} on {args.device}, {torch.get_num_threads()} threads")
    generator = torch.Generator(device=args.device).manual_seed(0)
    sample(model, n=2, temperature=0.5, generator=generator)  # warm-up

    start = time.perf_counter()
    batch = sample(model, n=1000, temperature=0.5, generator=generator)
    batched = time.perf_counter() - start
    print(f"1000 at once: {batched:.2f} s, {1000 / batched:.0f} sketches/s "
          f"({int(batch.ended.sum())} ended by themselves; goal: under 15 s)")

    start = time.perf_counter()
    for _ in range(args.one_at_a_time):
        sample(model, n=1, temperature=0.5, generator=generator)
    single = (time.perf_counter() - start) / args.one_at_a_time
    print(f"one at a time: {single:.2f} s each, {1 / single:.1f} sketches/s; "
          f"batching is {(1000 / batched) * single:.0f}x faster")


if __name__ == "__main__":
    main()
