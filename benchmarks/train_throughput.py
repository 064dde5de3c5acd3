"""Training throughput: sketches per second at batch 100 for both presets and both cells, the
padding fraction of the batches, and the model's useful FLOPs per second (real points only) as a
fraction of this machine's fp32 matmul peak, measured in the same run.

    python benchmarks/train_throughput.py [--steps 30] [--device cpu]

Useful FLOPs count, per real point, the multiply-adds of the encoder's two directions, the decoder
cell and the output layer, times 3 for forward plus backward; padding steps count for nothing.
"""

import argparse
import time

import torch
from _common import data_dir

from generator.data import load_sketch_data
from generator.model import make_config
from generator.train import Run


def matmul_peak(device, size=2048, repeats=20):
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


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


def measure(preset, cell, data, device, steps, tmp):
    config = make_config(preset, cell=cell, categories=tuple(data.categories), eval_every=10**9)
    run = Run(config, data, tmp / f"{preset}-{cell}", device)
    for _ in range(3):
        run.train_step()
    real = padded = 0
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        result = run.train_step()
        real += result["points"]
        padded += result["cells"]
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "sketches_per_s": steps * config.batch_size / seconds,
        "padding": 1 - real / padded,
        "useful_flops": 3 * flops_per_real_point(config) * real / seconds,
    }


def main():
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    folder, categories = data_dir()
    data = load_sketch_data(categories[:1], folder)
    peak = matmul_peak(args.device)
    print(f"{data.categories[0]} on {args.device}, {torch.get_num_threads()} threads; "
          f"fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("paper", "cpu"):
            for cell in ("lstm", "layer_norm"):
                r = measure(preset, cell, data, args.device, args.steps, Path(tmp))
                results[(preset, cell)] = r
                print(f"{preset:5s} {cell:10s} {r['sketches_per_s']:7.1f} sketches/s  padding {r['padding']:.1%}  "
                      f"useful {r['useful_flops'] / 1e9:6.1f} GFLOP/s = {r['useful_flops'] / peak:.0%} of peak")
    for cell in ("lstm", "layer_norm"):
        ratio = results[("cpu", cell)]["sketches_per_s"] / results[("paper", cell)]["sketches_per_s"]
        print(f"cpu preset / paper preset ({cell}): {ratio:.1f}x")
    print(f"layer_norm / lstm (paper): "
          f"{results[('paper', 'layer_norm')]['sketches_per_s'] / results[('paper', 'lstm')]['sketches_per_s']:.2f}")


if __name__ == "__main__":
    main()
