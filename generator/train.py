"""Training and evaluating Sketch-RNN: batches, the training loop, validation, checkpoints.

The run's folder holds best.pt (lowest validation loss, weights only), last.pt (everything needed
to resume: optimiser, schedules, batcher position), metrics.csv and loss.png.

A run trains in one process or data-parallel in a process group (distributed.py): each rank takes
its rows of every batch, DistributedDataParallel averages the gradients, and the step's loss and
gradient are the whole batch's. Rank 0 alone writes the run's files. A step's random numbers
(augmentation, dropout, z's noise) come from generators seeded by (seed, rank, step), so a resumed
run goes on exactly as an uninterrupted one with as many processes would have.

With `ema_decay` > 0 the run also keeps an exponential moving average of the weights after every
step; that average is what is validated and what best.pt holds (on 2000 drawings its validation
loss is lower and steadier than the raw weights'), while training goes on with the raw weights.
"""

import csv
import math
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import distributed
from .checkpoint import (CheckpointError, load_initial_weights, load_training_checkpoint, model_from_checkpoint,
                         save_checkpoint)
from .data import BucketBatcher, drop_points, mirror, random_scale, stroke5_batch
from .files import atomic_write
from .model import Config, SketchRNN, kl_loss, log_sigma_clamp_counts, reconstruction_loss, total_loss

# *_clamped: the share of the mixture's log-sigma values at real points that the clamp changed.
METRICS_FIELDS = ["step", "lr", "w_kl", "train_l_r", "train_l_kl", "valid_l_r", "valid_l_kl", "valid_loss", "seconds",
                  "train_clamped", "valid_clamped"]


def augment(drawing, rng, config):
    drawing = mirror(drawing, rng, config.augment_mirror_prob)
    drawing = random_scale(drawing, rng, config.random_scale)
    return drop_points(drawing, rng, config.augment_stroke_prob)


def step_generators(seed, rank, step, device):
    """The random generators of one rank's training step: numpy's for augmentation, torch's for
    dropout and z's noise."""
    augmentation, model = np.random.SeedSequence([seed, rank, step]).spawn(2)
    generator = torch.Generator(device).manual_seed(int(model.generate_state(1, np.uint64)[0]))
    return np.random.default_rng(augmentation), generator


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
    them), no augmentation, no dropout, z drawn with a fixed seed so the numbers repeat. In a
    process group the ranks take turns at the chunks of drawings and add up their sums: the same
    numbers as in one process."""
    model.eval()
    config = model.config
    rank, world_size = distributed.rank(), distributed.world_size()
    generator = torch.Generator(device=device).manual_seed(seed)
    pad_to = max(n_max, max(len(d) for d in drawings))
    sums = [0.0, 0.0, 0, 0]  # L_R and L_KL times drawings; log-sigma values the clamp changed, and all
    for chunk, start in enumerate(range(0, len(drawings), batch_size)):
        drawn = drawings[start:start + batch_size]
        if chunk % world_size != rank:
            if config.conditional:  # draw what the chunk's pass draws (z's noise), as one process would
                torch.randn((len(drawn), config.z_size), device=device, generator=generator)
            continue
        batch, lengths = to_tensors(drawn, device, pad_to)
        l_r, l_kl, counts = batch_losses(model, batch, lengths, n_max, generator)
        clamped, values = counts.tolist()
        sums = [sums[0] + l_r.item() * len(drawn), sums[1] + (l_kl.item() if l_kl is not None else 0.0) * len(drawn),
                sums[2] + clamped, sums[3] + values]
    if world_size > 1:  # float64 holds the counts exactly
        sums = distributed.all_reduce(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()
    n = len(drawings)
    l_r, l_kl = sums[0] / n, sums[1] / n
    loss = l_r + (config.kl_weight * max(l_kl, config.kl_tolerance) if config.conditional else 0.0)
    return {"L_R": l_r, "L_KL": l_kl if config.conditional else None, "loss": loss, "n": n,
            "clamped": sums[2] / max(sums[3], 1)}


def saved_settings(out_dir):
    """(config, data scale factor) of the run saved in out_dir/last.pt: what its data is loaded with."""
    path = Path(out_dir) / "last.pt"
    payload = load_training_checkpoint(path)
    try:
        return Config.from_dict(payload["config"]), payload["scale_factor"]
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: holds a config this version cannot read ({e})") from None


class Run:
    """One training run in a folder: a fresh one (from random weights, or from another run's
    checkpoint with `init_from`) or one resumed from last.pt. In a process group every rank makes
    its Run with the same arguments.

    `seed` (default 0) seeds the weights, batches, augmentation and dropout; a resumed run keeps
    the one it was started with, and refuses a `config` or `seed` that disagrees with it."""

    def __init__(self, config, data, out_dir, device, seed=None, resume=False, init_from=None):
        self.config = config
        self.data = data
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.train_drawings = data.splits["train"]
        self.valid_drawings = data.splits["valid"] or data.splits["train"][:config.batch_size]
        self.seed = seed or 0
        self.step = 0
        self.seconds = 0.0
        self.best_loss = math.inf
        self.saved_step = None  # the step last.pt holds, once this run has saved it
        self.saved_world_size = None  # how many processes trained the run before it was resumed
        self.stop_requested = False
        self.stop_agreed = False  # in a group: some rank was asked to stop during this step
        self.window = []  # (L_R, L_KL) of the steps since the last metrics row, for its training averages
        # This rank's log-sigma clamp counts of the steps since the last metrics row (since the start or resume).
        self.clamp_counts = torch.zeros(2, dtype=torch.int64, device=self.device)
        if not resume and (self.out_dir / "last.pt").exists():
            raise CheckpointError(f"{self.out_dir} already holds a run (last.pt); resume it or choose another folder")
        torch.manual_seed(self.seed)
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
        self.batcher = BucketBatcher([len(d) for d in self.train_drawings], config.batch_size, self.seed,
                                     bucketed=config.batching == "bucketed")
        if self.batcher.batch_size < self.world_size:
            raise ValueError(f"a batch of {self.batcher.batch_size} drawings cannot be split among {self.world_size} "
                             f"processes; use fewer processes or a larger batch_size")
        if resume:
            self._restore(self.out_dir / "last.pt", seed)
        elif self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        # What the training passes run through: in a group, DistributedDataParallel, which starts
        # every rank from rank 0's weights and averages the gradients during the backward pass.
        self.trained_model = self.model if self.world_size == 1 else DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._metrics = self._read_metrics() if self.rank == 0 else []

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
        if self.rank == 0:
            save_checkpoint({
                **self._common_payload(self.model),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "batcher": self.batcher.state(),
                "seed": self.seed,
                "world_size": self.world_size,
                "seconds": self.seconds,
                "best_loss": self.best_loss,
                "window": self.window,
            }, self.out_dir / "last.pt")
        self.saved_step = self.step

    def save_best(self, valid):
        if self.rank == 0:
            save_checkpoint({**self._common_payload(self.validated_model), "valid": valid}, self.out_dir / "best.pt")

    def _restore(self, path, seed):
        payload = load_training_checkpoint(path, map_location=self.device)
        try:
            saved = Config.from_dict(payload["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: its config is not one this version can read ({e})") from None
        if saved.categories != self.config.categories:
            raise CheckpointError(f"{path}: was trained on {','.join(saved.categories)}, "
                                  f"not {','.join(self.config.categories)}")
        changed = [f"{f.name}={getattr(self.config, f.name)} (saved: {getattr(saved, f.name)})"
                   for f in fields(Config) if getattr(self.config, f.name) != getattr(saved, f.name)]
        if seed is not None and seed != payload.get("seed"):
            changed.append(f"seed={seed} (saved: {payload.get('seed')})")
        if changed:
            raise CheckpointError(f"{path}: cannot resume with other settings: {', '.join(changed)}; "
                                  "a resumed run keeps those it was started with")
        self.model.load_state_dict(model_from_checkpoint(payload, path).state_dict())
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
            self.step = payload["step"]
            self.init_from = payload["init_from"]
            self.seconds = payload["seconds"]
            self.best_loss = payload["best_loss"]
            self.seed = payload["seed"]
            self.saved_world_size = payload["world_size"]
            if not all(isinstance(value, int) and value >= 0 for value in (self.step, self.seed, self.saved_world_size)):
                raise ValueError("step, seed or world_size is not a whole number")
            if not all(isinstance(value, (int, float)) for value in (self.seconds, self.best_loss)):
                raise ValueError("seconds or best_loss is not a number")
            self.window = [tuple(losses) for losses in payload["window"]]
            self.batcher.restore(payload["batcher"])
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
        """One optimiser step. Returns the whole batch's losses, the schedules, and this rank's real
        points and padded cells (for the padding fraction)."""
        config = self.config
        self.trained_model.train()
        lr = config.lr_at(self.step)
        w_kl = config.kl_weight_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch, lengths, share, generator = self._next_rows()
        l_r, l_kl, counts = batch_losses(self.trained_model, batch, lengths, self.data.n_max, generator,
                                         config.density_epsilon)
        self.clamp_counts += counts
        if self.world_size > 1:
            l_r, l_kl = self._whole_batch(l_r, l_kl, share)
        self.optimizer.zero_grad(set_to_none=True)
        # DistributedDataParallel averages the ranks' gradients: weighted by their shares of the
        # rows, they add up to the whole batch's.
        (total_loss(config, l_r, l_kl, w_kl) * (share * self.world_size)).backward()
        torch.nn.utils.clip_grad_value_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return {"l_r": l_r.item(), "l_kl": l_kl.item() if l_kl is not None else 0.0, "lr": lr, "w_kl": w_kl,
                "points": int(lengths.sum()), "cells": int(batch.shape[0] * (batch.shape[1] - 1))}

    def _next_rows(self):
        """This rank's rows of the next batch, augmented, padded as the whole batch is (L_p counts the
        padding steps); their share of the batch's rows; the step's torch generator."""
        drawings = self.batcher.next()
        rows = drawings[self.rank::self.world_size]
        augment_rng, generator = step_generators(self.seed, self.rank, self.step, self.device)
        augmented = [augment(self.train_drawings[i], augment_rng, self.config) for i in rows]
        pad_to = None
        if self.config.batching == "reference":
            pad_to = self.data.n_max  # the reference's: its pen loss sees every step after each end
        elif self.world_size > 1:  # to the whole batch's longest drawing, as one process pads it
            longest = distributed.all_reduce(torch.tensor([max(map(len, augmented))], device=self.device), dist.ReduceOp.MAX)
            pad_to = int(longest) + 1
        batch, lengths = to_tensors(augmented, self.device, pad_to)
        return batch, lengths, len(rows) / len(drawings), generator

    def _whole_batch(self, l_r, l_kl, share):
        """The whole batch's L_R and L_KL (each rank's, weighted by its share of the rows, added up)
        carrying this rank's gradient, so that the KL floor applies to the batch's L_KL. A stop asked
        of any rank travels along, so that every rank stops after the same step."""
        losses = [l_r] if l_kl is None else [l_r, l_kl]
        sums = torch.stack([loss.detach() * share for loss in losses]
                           + [torch.tensor(float(self.stop_requested), device=l_r.device)])
        distributed.all_reduce(sums)
        self.stop_agreed = bool(sums[-1] > 0)
        whole = [loss + (total - loss.detach()) for loss, total in zip(losses, sums)]
        return whole[0], whole[1] if l_kl is not None else None

    def validate(self):
        valid = evaluate(self.validated_model, self.valid_drawings, self.data.n_max, self.device)
        if valid["loss"] < self.best_loss:
            self.best_loss = valid["loss"]
            self.save_best(valid)
        return valid

    def request_stop(self):
        """Ask a running `train` to save last.pt and raise KeyboardInterrupt once the step in
        progress has finished (a signal handler calls this: an interrupt in the middle of a step
        would save weights that do not match the saved step). In a group, every rank stops after
        the first step whose losses carried the request (the one in progress, or the next)."""
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
                    clamped, values = distributed.all_reduce(self.clamp_counts).tolist()
                    self.clamp_counts.zero_()
                    if self.rank == 0:
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
                if self.stop_agreed if self.world_size > 1 else self.stop_requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not mid_step and self.saved_step != self.step:
                self.save_last()
            # A group stops after the same step on every rank: they leave together, as a rank that
            # tears the group down while another is still saving can make gloo abort that one.
            distributed.barrier()
            raise
        distributed.barrier()  # rank 0's files are written when `train` returns on any rank


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
