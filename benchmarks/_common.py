"""Shared set-up for the benchmarks: the data folder and Django-free imports of the project."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def data_dir():
    """QUICKDRAW_DATA_DIR if it holds pig.npz, else the project's own fixture files."""
    path = os.environ.get("QUICKDRAW_DATA_DIR")
    if path and (Path(path) / "pig.npz").exists():
        return Path(path), ["pig", "face", "alarm_clock", "radio"]
    print("QUICKDRAW_DATA_DIR has no pig.npz: measuring on the small fixture files instead")
    return ROOT / "fixtures" / "quickdraw", ["circle", "square"]


def model_test_drawings(model, payload, folder):
    """A trained model's test drawings, loaded as it was trained on them (its scale factor,
    length limit and simplification)."""
    from generator.data import load_model_data

    return load_model_data(model.config, folder, payload["scale_factor"]).splits["test"]


def model_samples(model, payload, n, temperature, drawings=None, device="cpu", temperature_rule="paper", seed=0):
    """n samples of a trained model, seeded: unconditional, or with `drawings` (its test drawings)
    decoding the code of each in turn, as generate_samples --mode conditional does."""
    import torch

    from generator.sample import encode, sample

    generator = torch.Generator(device=device).manual_seed(seed)
    z = (encode(model, [drawings[k % len(drawings)] for k in range(n)], generator=generator)
         if drawings is not None else None)
    return sample(model, n=n, z=z, temperature=temperature, scale_factor=payload["scale_factor"],
                  generator=generator, device=device, temperature_rule=temperature_rule)
