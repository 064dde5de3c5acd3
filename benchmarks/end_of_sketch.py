"""How sure a trained model is of where real drawings end: on each test drawing, read with teacher
forcing (z from its encoding, as evaluate_sketch_rnn does), the model's end-of-sketch probability
at the drawing's true end, and its highest end-of-sketch probability before it.

Sampling at temperature tau sharpens the pen probabilities, so a sketch ends at low tau only where
the model's end probability beats pen-down; a model that is often unsure at true ends (median
well under 0.5) draws on past them, and its samples never end more often.

    python benchmarks/end_of_sketch.py fixtures/checkpoints/*.pt [--data-dir DIR]
"""

import argparse

import numpy as np
import torch
from _common import data_dir, model_test_drawings

from generator.checkpoint import load_model
from generator.train import to_tensors


@torch.no_grad()
def end_probabilities(model, drawings, batch_size=100):
    """(p_end at each drawing's true end, highest p_end before it), one pair per drawing."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    at_end, before_end = [], []
    for start in range(0, len(drawings), batch_size):
        batch, lengths = to_tensors(drawings[start:start + batch_size], "cpu")
        params, _, _ = model(batch, lengths, generator)
        p_end = torch.softmax(params["pen_logits"], dim=-1)[..., 2]
        for row, length in zip(p_end, lengths.tolist()):
            # Output t predicts target t; a drawing of `length` points has its end row at `length`.
            at_end.append(row[length].item())
            before_end.append(row[:length].max().item())
    return np.array(at_end), np.array(before_end)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir", default=None, help="folder of <category>.npz (default QUICKDRAW_DATA_DIR)")
    args = parser.parse_args()
    folder = args.data_dir or data_dir()[0]
    print(f"{'checkpoint':32s} {'drawings':>8s} {'p_end at end':>12s} {'> 0.5':>6s} {'max before':>10s}")
    for path in args.checkpoints:
        model, payload = load_model(path)
        at_end, before_end = end_probabilities(model, model_test_drawings(model, payload, folder))
        print(f"{path[-32:]:32s} {len(at_end):8d} {np.median(at_end):12.2f} {np.mean(at_end > 0.5):6.0%} "
              f"{np.median(before_end):10.3f}")


if __name__ == "__main__":
    main()
