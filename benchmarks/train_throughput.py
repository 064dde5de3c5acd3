"""Training throughput: sketches per second at batch 100 for both presets and both cells, in one
process (all cores) and data-parallel in a group of processes (DistributedDataParallel over gloo,
the cores shared among them), in fp32 and bf16; the batches' padding fraction; the model's useful
FLOPs per second (real points only) as a fraction of this machine's matmul peak; and how long
validation takes in one process and sharded over the group. All measured in the same run, taking
turns round by round, so that a slow spell of the machine does not fall on one configuration alone.

    python benchmarks/train_throughput.py [--steps 30] [--rounds 3] [--processes 2] [--precisions fp32,bf16]
                                          [--presets paper,cpu] [--cells lstm,layer_norm]

Useful FLOPs count, per real point, the multiply-adds of the encoder's two directions, the decoder
cell and the output layer, times 3 for forward plus backward; padding steps count for nothing.
"""

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _common import data_dir

from generator import distributed
from generator.data import load_sketch_data
from generator.model import make_config
from generator.train import Run, evaluate


def matmul_peak(device, dtype, size=2048, repeats=20):
    """The fastest of `repeats` timed matmuls: a peak, so a slow spell of the machine does not lower it."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
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


class Trainer:
    """The runs of the configurations (preset, cell, precision) in this process (a rank of a group,
    or alone), warmed up."""

    def __init__(self, keys, data, device, valid_drawings, tmp):
        self.device = device
        self.valid = data.splits["valid"][:valid_drawings]
        self.n_max = data.n_max
        self.runs = {}
        for preset, cell, precision in keys:
            config = make_config(preset, cell=cell, precision=precision, categories=tuple(data.categories),
                                 eval_every=10**9)
            run = Run(config, data, Path(tmp) / f"{preset}-{cell}-{precision}-{distributed.rank()}", device)
            for _ in range(3):
                run.train_step()
            self.runs[(preset, cell, precision)] = run

    def time_steps(self, key, steps):
        """(seconds, real points, padded cells) of `steps` training steps, over every rank."""
        real = padded = 0
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            result = self.runs[key].train_step()
            real += result["points"]
            padded += result["cells"]
        sync(self.device)
        counts = distributed.all_reduce(torch.tensor([real, padded]))
        return time.perf_counter() - start, *counts.tolist()

    def time_validation(self, key):
        sync(self.device)
        start = time.perf_counter()
        evaluate(self.runs[key].validated_model, self.valid, self.n_max, self.device)
        return time.perf_counter() - start


def configurations(args):
    return [(preset, cell, precision) for preset in args.presets for cell in args.cells for precision in args.precisions]


def group_worker(rank, world_size, port, threads, args, commands, replies):
    """One rank of the group: builds its runs, then times what rank 0 reads from `commands`."""
    torch.set_num_threads(threads)
    os.environ["LOCAL_WORLD_SIZE"] = str(world_size)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    folder, categories = data_dir()
    data = load_sketch_data(categories[:1], folder)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(configurations(args), data, args.device, args.valid_drawings, tmp)
        while True:
            command = [commands.get() if rank == 0 else None]
            dist.broadcast_object_list(command, src=0)
            if command[0] is None:
                break
            what, key, steps = command[0]
            result = trainer.time_steps(key, steps) if what == "train" else trainer.time_validation(key)
            if rank == 0:
                replies.put(result)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration in all")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the steps are split into this many rounds, taking turns between the configurations")
    parser.add_argument("--processes", type=int, default=distributed.processes_for(distributed.cpu_cores(), 100),
                        help="the group's size (default: as train_sketch_rnn chooses on this machine's CPU)")
    parser.add_argument("--precisions", type=lambda text: text.split(","), default=["fp32", "bf16"])
    parser.add_argument("--presets", type=lambda text: text.split(","), default=["paper", "cpu"])
    parser.add_argument("--cells", type=lambda text: text.split(","), default=["lstm", "layer_norm"])
    parser.add_argument("--valid-drawings", type=int, default=600, help="validation drawings timed per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.device != "cpu":
        args.processes = 1  # ranks of a group need a GPU each; one GPU measures one process
    cores = distributed.cpu_cores()
    torch.set_num_threads(cores)
    folder, categories = data_dir()
    data = load_sketch_data(categories[:1], folder)
    peaks = {precision: matmul_peak(args.device, {"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
             for precision in args.precisions}
    print(f"{data.categories[0]} on {args.device}, {cores} cores: 1 process of {cores} threads"
          + (f" and {args.processes} processes of {max(1, cores // args.processes)} thread(s) (gloo)" if args.processes > 1 else "")
          + "; matmul peak " + ", ".join(f"{p} {peak / 1e9:.0f} GFLOP/s" for p, peak in peaks.items())
          + f"; {args.steps} steps each in {args.rounds} rounds; validation on {args.valid_drawings} drawings")

    group = None
    if args.processes > 1:
        context = mp.get_context("spawn")
        commands, replies = context.Queue(), context.Queue()
        group = mp.start_processes(group_worker, args=(args.processes, free_port(), max(1, cores // args.processes), args,
                                                       commands, replies),
                                   nprocs=args.processes, join=False, start_method="spawn")

    def in_group(what, key, steps=0):
        commands.put((what, key, steps))
        return replies.get()

    sizes = [1] + ([args.processes] if group else [])
    keys = configurations(args)
    train_times = {(key, n): [] for key in keys for n in sizes}
    valid_times = {(key, n): [] for key in keys if key[2] == "fp32" for n in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        alone = Trainer(keys, data, args.device, args.valid_drawings, tmp)
        for steps in [len(chunk) for chunk in np.array_split(range(args.steps), args.rounds)]:
            for key in keys:
                for n in sizes:
                    train_times[(key, n)].append((in_group("train", key, steps) if n > 1 else alone.time_steps(key, steps))
                                                 + (steps,))
            for key, n in valid_times:
                valid_times[(key, n)].append(in_group("valid", key) if n > 1 else alone.time_validation(key))
    if group:
        commands.put(None)
        group.join()

    rates = {}
    for (key, n), rounds in train_times.items():
        preset, cell, precision = key
        config = make_config(preset, cell=cell)
        seconds, real, padded, steps = (sum(values) for values in zip(*rounds))
        rates[(key, n)] = [s * config.batch_size / t for t, _, _, s in rounds]
        useful = 3 * flops_per_real_point(config) * real / seconds
        print(f"{preset:5s} {cell:10s} {precision} {n} process{'es' if n > 1 else '  '} "
              f"{steps * config.batch_size / seconds:7.1f} sketches/s "
              f"(rounds {min(rates[(key, n)]):.0f}-{max(rates[(key, n)]):.0f})  "
              f"padding {1 - real / padded:.1%}  useful {useful / 1e9:6.1f} GFLOP/s = {useful / peaks[precision]:.0%} of peak")
    for (key, n), seconds in valid_times.items():
        print(f"validation {key[0]:5s} {key[1]:10s} {n} process{'es' if n > 1 else '  '} "
              f"{args.valid_drawings / np.median(seconds):7.1f} drawings/s (median of the rounds)")

    def ratio(a, b, label):
        ratios = [x / y for x, y in zip(rates[a], rates[b])]
        print(f"{label}: {np.median(ratios):.2f}x (median of the rounds; {min(ratios):.2f}-{max(ratios):.2f})")

    best = sizes[-1]
    for key in keys:
        if group:
            ratio((key, args.processes), (key, 1), f"{args.processes} processes / 1 ({', '.join(key)})")
        if key[2] != "fp32" and "fp32" in args.precisions:
            ratio((key, best), ((*key[:2], "fp32"), best), f"{key[2]} / fp32 ({key[0]}, {key[1]}, {best} process(es))")


if __name__ == "__main__":
    main()
