"""Training throughput: sketches per second at batch 100 for both presets and both cells, the
padding fraction of the batches, and the model's useful FLOPs per second (real points only) as a
fraction of this machine's fp32 matmul peak, measured in the same run.

    python benchmarks/train_throughput.py [--steps 30] [--rounds 3] [--device cpu]

On the CPU, training splits each batch into one shard per thread; each configuration is measured
that way and with the whole batch in one shard, and the speed-up printed.

Useful FLOPs count, per real point, the multiply-adds of the encoder's two directions, the decoder
cell and the output layer, times 3 for forward plus backward; padding steps count for nothing.
"""

import argparse
import time

import numpy as np
import torch
from _common import data_dir

from generator.data import load_sketch_data
from generator.model import make_config
from generator.train import Run, shard_count


def matmul_peak(device, size=2048, repeats=20):
    """The fastest of `repeats` timed matmuls: a peak, so a slow spell of the machine does not lower it."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def flops_per_real_point(config):
    """Forward FLOPs of one real point: 2 x multiply-adds of the matmuls it goes through."""
    enc = 2 * 4 * config.enc_size * (5 + config.enc_size) if config.conditional else 0
    dec_in = 5 + (config.z_size if config.conditional else 0)
    dec = 4 * config.dec_size * (dec_in + config.dec_size)
    out = config.dec_size * (6 * config.num_mixture + 3)
    return 2 * (enc + dec + out)


def make_run(preset, cell, shards, data, device, tmp):
    config = make_config(preset, cell=cell, categories=tuple(data.categories), eval_every=10**9)
    run = Run(config, data, tmp / f"{preset}-{cell}-{shards}", device, shards=shards)
    for _ in range(3):
        run.train_step()
    return run


def time_steps(run, device, steps):
    """(seconds, real points, padded cells) of `steps` training steps."""
    real = padded = 0
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        result = run.train_step()
        real += result["points"]
        padded += result["cells"]
    sync(device)
    return time.perf_counter() - start, real, padded


def main():
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration in all")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the steps are split into this many rounds, taking turns between the configurations, "
                             "so that a slow spell of the machine does not fall on one of them alone")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    folder, categories = data_dir()
    data = load_sketch_data(categories[:1], folder)
    peak = matmul_peak(args.device)
    shards = shard_count(torch.device(args.device), make_config("cpu").batch_size)
    print(f"{data.categories[0]} on {args.device}, {torch.get_num_threads()} threads, batches in {shards} shards "
          f"(as training splits them){' and in 1' if shards > 1 else ''}; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; "
          f"{args.steps} steps each in {args.rounds} rounds")
    configurations = [(preset, cell, n) for preset in ("paper", "cpu") for cell in ("lstm", "layer_norm")
                      for n in sorted({shards, 1}, reverse=True)]
    # Every run has the same seed and batch size, so round k gives each configuration the same batches.
    per_round = {key: [] for key in configurations}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {key: make_run(*key, data, args.device, Path(tmp)) for key in configurations}
        for steps in [len(chunk) for chunk in np.array_split(range(args.steps), args.rounds)]:
            for key in configurations:
                per_round[key].append(time_steps(runs[key], args.device, steps) + (steps,))
    rates = {}
    for (preset, cell, n), rounds in per_round.items():
        seconds, real, padded, steps = (sum(values) for values in zip(*rounds))
        config = runs[(preset, cell, n)].config
        rates[(preset, cell, n)] = [s * config.batch_size / t for t, _, _, s in rounds]
        useful = 3 * flops_per_real_point(config) * real / seconds
        print(f"{preset:5s} {cell:10s} {n} shard{'s' if n > 1 else ' '} "
              f"{steps * config.batch_size / seconds:7.1f} sketches/s "
              f"(rounds {min(rates[(preset, cell, n)]):.0f}-{max(rates[(preset, cell, n)]):.0f})  "
              f"padding {1 - real / padded:.1%}  useful {useful / 1e9:6.1f} GFLOP/s = {useful / peak:.0%} of peak")

    def ratio(a, b, label):
        ratios = [x / y for x, y in zip(rates[a], rates[b])]
        print(f"{label}: {np.median(ratios):.2f}x (median of the rounds; {min(ratios):.2f}-{max(ratios):.2f})")

    for cell in ("lstm", "layer_norm"):
        ratio(("cpu", cell, shards), ("paper", cell, shards), f"cpu preset / paper preset ({cell})")
    ratio(("paper", "layer_norm", shards), ("paper", "lstm", shards), "layer_norm / lstm (paper)")
    if shards > 1:
        for preset in ("paper", "cpu"):
            for cell in ("lstm", "layer_norm"):
                ratio((preset, cell, shards), (preset, cell, 1), f"{shards} shards / 1 ({preset}, {cell})")


if __name__ == "__main__":
    main()
