"""Training and evaluating Sketch-RNN: batches, the training loop, validation, checkpoints.

The run's folder holds best.pt (lowest validation loss, weights only), last.pt (everything needed
to resume: optimiser, schedules, random generators, batcher position), metrics.csv and loss.png.
A resumed run continues exactly as an uninterrupted one would have.

On the CPU each step splits its batch into shards (one per thread, see shard_count) whose forward
and backward passes run side by side; together they give exactly the whole batch's loss and
gradient.

With `ema_decay` > 0 the run also keeps an exponential moving average of the weights after every
step; that average is what is validated and what best.pt holds (on 2000 drawings its validation
loss is lower and steadier than the raw weights'), while training goes on with the raw weights.
"""

import csv
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .checkpoint import (CheckpointError, load_initial_weights, load_training_checkpoint, model_from_checkpoint,
                         save_checkpoint)
from .data import BucketBatcher, drop_points, mirror, random_scale, stroke5_batch
from .files import atomic_write
from .model import Config, SketchRNN, kl_loss, log_sigma_clamp_counts, reconstruction_loss, total_loss

MIN_SHARD_ROWS = 25  # drawings per shard of a batch at least (see shard_count)
# *_clamped: the share of the mixture's log-sigma values at real points that the clamp changed.
METRICS_FIELDS = ["step", "lr", "w_kl", "train_l_r", "train_l_kl", "valid_l_r", "valid_l_kl", "valid_loss", "seconds",
                  "train_clamped", "valid_clamped"]


def augment(drawing, rng, config):
    drawing = mirror(drawing, rng, config.augment_mirror_prob)
    drawing = random_scale(drawing, rng, config.random_scale)
    return drop_points(drawing, rng, config.augment_stroke_prob)


def shard_count(device, batch_size):
    """How many shards a training step splits its batch into, each shard's forward and backward pass
    on a thread of its own. At this model's sizes the per-step matmuls are too small for several
    threads to share one well, so on the CPU one shard per torch thread (with at least
    MIN_SHARD_ROWS drawings each) trains faster than all threads on every matmul. On a GPU, one."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), batch_size // MIN_SHARD_ROWS))


def shard_generator(device, seed, shard, step):
    """The random generator of every batch's shard number `shard` > 0 (shard 0 uses torch's global one)."""
    return torch.Generator(device).manual_seed(int(np.random.SeedSequence([seed, shard, step]).generate_state(1)[0]))


def to_tensors(drawings, device, pad_to=None):
    batch, lengths = stroke5_batch(drawings, pad_to)
    return torch.from_numpy(batch).to(device), torch.from_numpy(lengths).to(device)


def batch_losses(model, batch, lengths, n_max, generator=None, density_epsilon=0.0):
    """(L_R, L_KL or None, log-sigma clamp counts) of one batch; L_R over the batch's own T target
    steps / n_max (see reconstruction_loss for density_epsilon, log_sigma_clamp_counts for the counts)."""
    params, mu, sigma_hat = model(batch, lengths, generator)
    l_r, _, _ = reconstruction_loss(params, batch[:, 1:], n_max, density_epsilon)
    l_kl = kl_loss(mu, sigma_hat) if mu is not None else None
    return l_r, l_kl, log_sigma_clamp_counts(params, batch[:, 1:])


@torch.no_grad()
def evaluate(model, drawings, n_max, device, batch_size=100, seed=0):
    """The paper's losses on a split: every drawing padded to n_max steps (L_p over all of
    them), no augmentation, no dropout, z drawn with a fixed seed so the numbers repeat."""
    model.eval()
    config = model.config
    generator = torch.Generator(device=device).manual_seed(seed)
    pad_to = max(n_max, max(len(d) for d in drawings))
    sums = {"l_r": 0.0, "l_kl": 0.0}
    clamp_counts = 0
    for start in range(0, len(drawings), batch_size):
        chunk = drawings[start:start + batch_size]
        batch, lengths = to_tensors(chunk, device, pad_to)
        l_r, l_kl, counts = batch_losses(model, batch, lengths, n_max, generator)
        sums["l_r"] += l_r.item() * len(chunk)
        sums["l_kl"] += (l_kl.item() if l_kl is not None else 0.0) * len(chunk)
        clamp_counts = clamp_counts + counts
    n = len(drawings)
    l_r, l_kl = sums["l_r"] / n, sums["l_kl"] / n
    loss = l_r + (config.kl_weight * max(l_kl, config.kl_tolerance) if config.conditional else 0.0)
    clamped, values = clamp_counts.tolist()
    return {"L_R": l_r, "L_KL": l_kl if config.conditional else None, "loss": loss, "n": n,
            "clamped": clamped / max(values, 1)}


class Run:
    """One training run in a folder: create it fresh (from random weights, or from another run's
    checkpoint with `init_from`) or resume it from last.pt.

    `shards`: how many shards each batch is split into (default: shard_count). A resumed run that
    stays on the CPU keeps the count it was saved with, so that it goes on exactly."""

    def __init__(self, config, data, out_dir, device, seed=0, resume=False, init_from=None, shards=None):
        self.config = config
        self.data = data
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.train_drawings = data.splits["train"]
        self.valid_drawings = data.splits["valid"] or data.splits["train"][:config.batch_size]
        self.step = 0
        self.seconds = 0.0
        self.best_loss = math.inf
        self.saved_step = None  # the step last.pt holds, once this run has saved it
        self.stop_requested = False
        self.window = []  # (L_R, L_KL) of the steps since the last metrics row, for its training averages
        # Log-sigma clamp counts of the steps since the last metrics row (since the start or resume).
        self.clamp_counts = torch.zeros(2, dtype=torch.int64, device=self.device)
        torch.manual_seed(seed)
        self.model = SketchRNN(config)
        # Provenance of the starting weights, kept in every checkpoint of the run.
        self.init_from = load_initial_weights(self.model, init_from) if init_from else None
        self.model.to(self.device)
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
                    if config.ema_decay > 0 else None)
        if self.ema is not None:
            # Its deep copy leaves each nn.LSTM's weights in separate blocks, which cuDNN would copy
            # into one at every call; compact them once (a no-op on the CPU).
            self.ema.apply(lambda m: m.flatten_parameters() if isinstance(m, nn.RNNBase) else None)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.batcher = BucketBatcher([len(d) for d in self.train_drawings], config.batch_size, seed,
                                     bucketed=config.batching == "bucketed")
        self.aug_rng = np.random.default_rng([seed, 1])
        self.seed = seed
        self._use_shards(shards or shard_count(self.device, config.batch_size), step=0)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._restore(self.out_dir / "last.pt")
        self._metrics = self._read_metrics()

    def _use_shards(self, n, step):
        """Split every batch into n shards, their generators seeded for `step`. With fewer threads
        than shards (a run resumed with a lower --threads) the shards take turns: same results."""
        self.shards = n
        # Shard 0 draws from torch's global generator, so a run in one shard draws what one pass would.
        self.shard_generators = [None] + [shard_generator(self.device, self.seed, k, step) for k in range(1, n)]
        threads = torch.get_num_threads()
        workers = min(n, threads)
        self.pool = (ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(max(1, threads // n),))
                     if workers > 1 else None)

    # -- checkpoints --------------------------------------------------------------------------

    @property
    def validated_model(self):
        """The weights that are validated and kept as best.pt: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _common_payload(self, model):
        return {
            "config": self.config.to_dict(),
            "model": model.state_dict(),
            "scale_factor": self.data.scale_factor,
            "n_max": self.data.n_max,
            "data_files": self.data.files,
            "step": self.step,
            "init_from": self.init_from,
        }

    def save_last(self):
        rng = {
            "torch": torch.get_rng_state(),
            # The run's own GPU only: the state of every GPU would not fit a machine with fewer.
            "cuda": [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else [],
            "numpy_augment": self.aug_rng.bit_generator.state,
            "shards": [generator.get_state() for generator in self.shard_generators[1:]],
            "batcher": self.batcher.state(),
        }
        save_checkpoint({
            **self._common_payload(self.model),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "seconds": self.seconds,
            "best_loss": self.best_loss,
            "window": self.window,
            "seed": self.seed,
        }, self.out_dir / "last.pt")
        self.saved_step = self.step

    def save_best(self, valid):
        save_checkpoint({**self._common_payload(self.validated_model), "valid": valid}, self.out_dir / "best.pt")

    def _restore(self, path):
        payload = load_training_checkpoint(path, map_location=self.device)
        try:
            saved = Config.from_dict(payload["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: its config is not one this version can read ({e})") from None
        if saved != self.config:
            raise CheckpointError(f"{path}: was trained with another config or categories; resume with the same ones")
        self.model.load_state_dict(model_from_checkpoint(payload, path).state_dict())
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
            self.step = payload["step"]
            self.init_from = payload.get("init_from")
            self.seconds = payload["seconds"]
            self.best_loss = payload["best_loss"]
            if not (isinstance(self.step, int) and self.step >= 0 and isinstance(self.seconds, (int, float))
                    and isinstance(self.best_loss, (int, float))):
                raise ValueError("step, seconds or best_loss is not a number")
            self.window = [tuple(losses) for losses in payload["window"]]
            self.seed = payload["seed"]
            rng = payload["rng"]
            torch.set_rng_state(rng["torch"].cpu())
            if rng["cuda"] and self.device.type == "cuda":  # a GPU run may go on on the CPU, and back
                torch.cuda.set_rng_state(rng["cuda"][0].cpu(), self.device)
            self.aug_rng.bit_generator.state = rng["numpy_augment"]
            if self.device.type == "cpu" and not rng["cuda"]:
                # Still on the CPU: the same shards as before, whatever the threads now, so the run
                # goes on exactly.
                saved_shards = rng["shards"]
                self._use_shards(len(saved_shards) + 1, self.step)
                for generator, state in zip(self.shard_generators[1:], saved_shards):
                    generator.set_state(state)
            else:
                # Moved between the CPU and a GPU (which change the numbers anyway): the new device's
                # count, with streams seeded for this step.
                self._use_shards(self.shards, self.step)
            self.batcher.restore(rng["batcher"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{path}: lacks part of a training state or holds a damaged one ({e!r}); "
                                  "it cannot resume a run") from None
        self.saved_step = self.step

    # -- metrics ------------------------------------------------------------------------------

    def _read_metrics(self):
        path = self.out_dir / "metrics.csv"
        if not path.exists():
            return []
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        try:
            # Rows written after the last checkpoint belong to steps that will be redone.
            return [row for row in rows if int(row["step"]) <= self.step]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: is not a metrics file this command wrote (a row without a whole-number "
                                  f"step); repair it by hand or move it away to start a fresh one") from None

    def _write_metrics(self, row):
        self._metrics.append({k: row[k] for k in METRICS_FIELDS})
        with atomic_write(self.out_dir / "metrics.csv") as temporary, open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_FIELDS)
            writer.writeheader()
            writer.writerows(self._metrics)
        plot_metrics(self._metrics, self.out_dir / "loss.png")

    # -- the loop -----------------------------------------------------------------------------

    def train_step(self):
        """One optimiser step. Returns its losses, schedules, and the batch's real points and
        padded cells (for the padding fraction)."""
        config = self.config
        self.model.train()
        lr = config.lr_at(self.step)
        w_kl = config.kl_weight_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        drawings = [augment(self.train_drawings[i], self.aug_rng, config) for i in self.batcher.next()]
        # The reference pads every batch to N_max, so its pen loss sees every step after each end.
        batch, lengths = to_tensors(drawings, self.device, self.data.n_max if config.batching == "reference" else None)
        l_r, l_kl = self._set_gradients(batch, lengths, w_kl)
        torch.nn.utils.clip_grad_value_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return {"l_r": l_r.item(), "l_kl": l_kl.item() if l_kl is not None else 0.0, "lr": lr, "w_kl": w_kl,
                "points": int(lengths.sum()), "cells": int(batch.shape[0] * (batch.shape[1] - 1))}

    def _set_gradients(self, batch, lengths, w_kl):
        """Set each parameter's .grad to the gradient of the batch's total loss; return the batch's
        L_R and L_KL (None when unconditional).

        The batch's rows are split into self.shards shards whose passes run side by side. Each shard
        keeps the batch's padded length and is weighted by its share of the rows, so the shards'
        losses add up to the batch's; the KL floor, which applies to the batch's L_KL, is the one
        term that couples them, and is settled between the forward and the backward passes."""
        shard_batches = [(rows, n) for rows, n in zip(batch.tensor_split(self.shards), lengths.tensor_split(self.shards))
                         if len(n)]

        clamp_counts = [None] * len(shard_batches)

        def forward(k):
            l_r, l_kl, clamp_counts[k] = batch_losses(self.model, *shard_batches[k], self.data.n_max,
                                                      self.shard_generators[k], self.config.density_epsilon)
            return [l_r] if l_kl is None else [l_r, l_kl]

        losses = self._in_shards(forward, len(shard_batches))  # per shard: [L_R] or [L_R, L_KL]
        self.clamp_counts += sum(clamp_counts)
        shares = [len(n) / len(lengths) for _, n in shard_batches]

        def batch_mean(j):
            return sum(share * shard_losses[j] for share, shard_losses in zip(shares, losses))

        l_r = batch_mean(0)
        l_kl = batch_mean(1) if self.config.conditional else None
        # The gradient of the total loss with respect to each shard's losses (this leaves the shards'
        # own graphs in place), then each shard's backward pass from there.
        per_shard = len(losses[0])
        upstream = torch.autograd.grad(total_loss(self.config, l_r, l_kl, w_kl), sum(losses, []))
        params = list(self.model.parameters())

        def backward(k):
            return torch.autograd.grad(losses[k], params, upstream[k * per_shard:(k + 1) * per_shard], allow_unused=True)

        for param, grads in zip(params, zip(*self._in_shards(backward, len(shard_batches)))):
            grads = [g for g in grads if g is not None]
            param.grad = sum(grads[1:], grads[0]) if grads else None
        return l_r, l_kl

    def _in_shards(self, work, n):
        """[work(0), ..., work(n - 1)], side by side on the pool's threads when there is a pool."""
        if self.pool is None or n == 1:
            return [work(k) for k in range(n)]
        return list(self.pool.map(work, range(n)))

    def validate(self):
        valid = evaluate(self.validated_model, self.valid_drawings, self.data.n_max, self.device)
        if valid["loss"] < self.best_loss:
            self.best_loss = valid["loss"]
            self.save_best(valid)
        return valid

    def request_stop(self):
        """Ask a running `train` to save last.pt and raise KeyboardInterrupt once the step in
        progress has finished (a signal handler calls this: an interrupt in the middle of a step
        would save weights that do not match the saved step)."""
        self.stop_requested = True

    def train(self, steps, progress=None):
        """Train up to `steps` total steps, validating and checkpointing every eval_every steps.

        On KeyboardInterrupt between steps (or after `request_stop`) the state after the last
        finished step is saved to last.pt before the interrupt goes on; one that lands in the
        middle of a step leaves last.pt as it was. `progress(step, postfix)` is called after
        every step.
        """
        config = self.config
        window = self.window
        started = time.perf_counter() - self.seconds
        mid_step = False
        try:
            while self.step < steps:
                mid_step = True
                result = self.train_step()
                mid_step = False
                l_r, l_kl, lr, w_kl = result["l_r"], result["l_kl"], result["lr"], result["w_kl"]
                window.append((l_r, l_kl))
                self.seconds = time.perf_counter() - started
                if not all(map(math.isfinite, window[-1])):
                    raise FloatingPointError(f"loss became {window[-1]} at step {self.step}")
                if self.step % config.eval_every == 0 or self.step == steps:
                    valid = self.validate()
                    if not math.isfinite(valid["loss"]):
                        raise FloatingPointError(f"validation loss became {valid['loss']} at step {self.step}")
                    train_l_r, train_l_kl = np.mean(window, axis=0)
                    window.clear()
                    clamped, values = self.clamp_counts.tolist()
                    self.clamp_counts.zero_()
                    self._write_metrics({
                        "step": self.step, "lr": f"{lr:.6g}", "w_kl": f"{w_kl:.6g}",
                        "train_l_r": f"{train_l_r:.5f}", "train_l_kl": f"{train_l_kl:.5f}",
                        "valid_l_r": f"{valid['L_R']:.5f}", "valid_l_kl": f"{valid['L_KL'] or 0.0:.5f}",
                        "valid_loss": f"{valid['loss']:.5f}", "seconds": f"{self.seconds:.1f}",
                        "train_clamped": f"{clamped / max(values, 1):.3g}", "valid_clamped": f"{valid['clamped']:.3g}",
                    })
                    self.save_last()
                if progress:
                    progress(self.step, {"L_R": f"{l_r:.3f}", "L_KL": f"{l_kl:.3f}", "best": f"{self.best_loss:.3f}"})
                if self.stop_requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not mid_step and self.saved_step != self.step:
                self.save_last()
            raise


def plot_metrics(rows, path):
    """loss.png: train and validation L_R and L_KL against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "l_r", "reconstruction loss L_R"), (axes[1], "l_kl", "KL loss L_KL")):
        # Train losses are averaged over the steps' augmented batches, padded as the run's batching
        # pads them (bucketed: to each batch's longest drawing); valid losses are the paper's (evaluate).
        ax.plot(steps, [float(r[f"train_{key}"]) for r in rows], label="train (augmented batches)")
        ax.plot(steps, [float(r[f"valid_{key}"]) for r in rows], label="valid")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
