"""The reference's evaluation protocol (magenta's sketch_rnn_train.evaluate_model), the one behind
the paper's figures: a split's losses as the reference computes them, to compare with its Table 1.
train.evaluate is this project's own protocol (the paper's definitions on every drawing).

How the reference's protocol differs from train.evaluate:
- The split is sorted by length (its DataLoader: np.argsort of the lengths) and cut into whole
  batches of batch_size; the remainder, the longest drawings, is left out.
- L_s is -log(density + 1e-6), the reference's guard; L_p counts all N_max steps, as in training
  (the reference builds its evaluation graph with is_training=1, which leaves the pen loss unmasked).
- L_KL is floored at kl_tolerance in each batch, and reported floored.
- L_R and L_KL are means over the batches, and loss = L_R + kl_weight_start x L_KL: the evaluation
  graph's KL weight is a variable of its own that is never fed, so it keeps its initial value. The
  reference keeps the checkpoint with the lowest such loss.
"""

import numpy as np
import torch

from .model import REFERENCE
from .train import batch_losses, to_tensors


@torch.no_grad()
def evaluate_reference(model, drawings, n_max, device, batch_size=None, seed=0):
    """The reference's losses of `drawings` (a split, normalised as the model was trained) in whole
    batches of `batch_size` (default: the model's), z drawn with a fixed seed so the numbers repeat.
    Returns L_R, L_KL (floored; None without an encoder), loss, n (the drawings evaluated), n_max,
    and `clamped` (the share of log-sigma values at real points that the model's clamp changed)."""
    config = model.config
    batch_size = batch_size or config.batch_size
    batches = len(drawings) // batch_size
    if batches == 0:
        raise ValueError(f"the reference's protocol evaluates whole batches of {batch_size} drawings, and the split "
                         f"has {len(drawings)}; give a smaller batch size")
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    order = np.argsort(np.array([len(d) for d in drawings]))
    pad_to = max(n_max, max(len(d) for d in drawings))
    l_r = l_kl = 0.0
    clamp_counts = 0
    for b in range(batches):
        chunk = [drawings[i] for i in order[b * batch_size:(b + 1) * batch_size]]
        batch, lengths = to_tensors(chunk, device, pad_to)
        r, kl, counts = batch_losses(model, batch, lengths, n_max, generator, REFERENCE["density_epsilon"])
        l_r += r.item()
        l_kl += max(kl.item(), config.kl_tolerance) if kl is not None else 0.0
        clamp_counts = clamp_counts + counts
    l_r, l_kl = l_r / batches, l_kl / batches
    clamped, values = clamp_counts.tolist()
    return {"L_R": l_r, "L_KL": l_kl if config.conditional else None, "loss": l_r + config.kl_weight_start * l_kl,
            "n": batches * batch_size, "n_max": n_max, "clamped": clamped / max(values, 1)}
