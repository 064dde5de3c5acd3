"""Checkpoint files: written atomically, read without running arbitrary pickles.

A checkpoint is a dict with `format` = FORMAT, the model's config, its weights, the data scale
factor and n_max, the step, and for training checkpoints (last.pt) the training state
(TRAINING_STATE: the optimiser, the batcher, the seed and the number of processes...), so a run
resumes exactly where it stopped.

Which files this version reads: the weights and config of every format in WEIGHTS_FORMATS (for
sampling, evaluation and --init-from); the training state of FORMAT only (to resume a run).
"""

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch

from .files import atomic_write
from .model import Config, SketchRNN

FORMAT = "sketchlab.sketch_rnn/3"
# Formats 1 and 2 hold the same weights and config; their training states kept random generators'
# states, where format 3's steps draw from generators seeded by (seed, rank, step).
WEIGHTS_FORMATS = ("sketchlab.sketch_rnn/1", "sketchlab.sketch_rnn/2", FORMAT)
TRAINING_STATE = ("optimizer", "ema", "batcher", "seed", "world_size", "seconds", "best_loss", "window")


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged or not a Sketchlab Sketch-RNN checkpoint."""


def save_checkpoint(payload, path):
    """torch.save, atomically: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        torch.save({"format": FORMAT, **payload}, temporary)


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict, checked; weights_only loading refuses code-carrying pickles."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    # torch.load does not check the archive's checksums: damaged bytes inside a tensor would load
    # as wrong numbers (a resumed optimiser with values of 1e7, say) without a word.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError):
        damaged = None  # not a zip archive at all: torch.load below says so
    if damaged:
        raise CheckpointError(f"{path}: damaged (its part {damaged} does not match its checksum); "
                              "use another copy or an earlier checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message here advises weights_only=False, which would run the file's code.
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file of tensors and plain values; "
                              f"files that would run code when loaded are refused)") from None
    except Exception as e:  # torch raises many kinds (KeyError, RuntimeError, UnpicklingError...) for bad files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") not in WEIGHTS_FORMATS:
        raise CheckpointError(f"{path}: not a Sketchlab Sketch-RNN checkpoint (expected format {FORMAT})")
    for key in ("config", "model", "scale_factor", "n_max", "step"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return payload


def load_training_checkpoint(path, map_location="cpu"):
    """The checkpoint dict of a run to resume: a last.pt of this format, with a training state."""
    payload = load_checkpoint(path, map_location)
    if payload["format"] != FORMAT:
        raise CheckpointError(f"{path}: is a checkpoint of format {payload['format']}, whose training state this "
                              f"version does not resume (it resumes format {FORMAT}); finish that run with the "
                              "version that started it, or start a new run from its weights with --init-from")
    missing = [key for key in TRAINING_STATE if key not in payload]
    if "optimizer" in missing:
        raise CheckpointError(f"{path}: holds weights only and cannot resume training")
    if missing:
        raise CheckpointError(f"{path}: lacks part of a training state ({', '.join(missing)}); it cannot resume a run")
    return payload


def model_from_checkpoint(payload, path="checkpoint"):
    """A SketchRNN with the checkpoint's config and weights."""
    try:
        config = Config.from_dict(payload["config"])
        model = SketchRNN(config)
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: config or weights do not fit the model ({str(e).splitlines()[0]})") from None
    return model


# What must agree for one model's weights to fit another's.
ARCHITECTURE_FIELDS = ("enc_size", "dec_size", "z_size", "num_mixture", "cell", "conditional")


def load_initial_weights(model, path):
    """Copy a checkpoint's weights into `model` (a fresh run that starts from another run's model).
    Returns where they came from, to be kept in the new run's checkpoints."""
    payload = load_checkpoint(path)
    with torch.random.fork_rng(devices=[]):  # building it draws random weights; keep the run's seed stream
        source = model_from_checkpoint(payload, path)
    differ = [f"{name} {getattr(source.config, name)} there, {getattr(model.config, name)} here"
              for name in ARCHITECTURE_FIELDS if getattr(source.config, name) != getattr(model.config, name)]
    if differ:
        raise CheckpointError(f"{path}: its model has another shape ({'; '.join(differ)}); "
                              f"choose the same --preset, --cell and --set sizes as its run")
    model.load_state_dict(source.state_dict())
    return {"file": Path(path).name, "sha256": file_sha256(path), "categories": list(source.config.categories),
            "step": payload["step"]}


def load_model(path, device="cpu"):
    """(model on device in eval mode, checkpoint dict) from a checkpoint file."""
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path).to(device)
    model.eval()
    return model, payload


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(name):
    """'auto' -> cuda when present, else cpu; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    return torch.device(name)
