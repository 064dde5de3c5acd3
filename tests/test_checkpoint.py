import statistics
import struct
import zipfile

import pytest
import torch

from generator.checkpoint import (CheckpointError, load_checkpoint, load_initial_weights, load_model,
                                  load_training_checkpoint, save_checkpoint)
from generator.data import load_sketch_data
from generator.model import Config, SketchRNN
from generator.sample import sample
from generator.train import Run
from tests.conftest import ROOT

COMMITTED = sorted((ROOT / "fixtures").glob("*/*.pt"))


def write_model(path):
    config = Config(enc_size=8, dec_size=8, z_size=4, num_mixture=2)
    save_checkpoint({"config": config.to_dict(), "model": SketchRNN(config).state_dict(), "scale_factor": 2.0,
                     "n_max": 10, "step": 3}, path)


def test_round_trip(tmp_path):
    write_model(tmp_path / "m.pt")
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["step"] == 3 and model.config.z_size == 4 and not model.training


def test_damaged_file(tmp_path):
    write_model(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable checkpoint"):
        load_model(tmp_path / "cut.pt")


def test_bytes_damaged_inside_a_tensor_are_found_not_loaded_as_numbers(tmp_path):
    write_model(tmp_path / "m.pt")
    with zipfile.ZipFile(tmp_path / "m.pt") as archive:
        largest = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    data = bytearray((tmp_path / "m.pt").read_bytes())
    # A stored (uncompressed) tensor's bytes follow its 30-byte local header, name and extra field.
    name_length, extra_length = struct.unpack("<HH", data[largest.header_offset + 26:largest.header_offset + 30])
    start = largest.header_offset + 30 + name_length + extra_length
    data[start + 4:start + 12] = bytes(b ^ 0xFF for b in data[start + 4:start + 12])
    (tmp_path / "m.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"m.pt: damaged \\(its part {largest.filename} does not match"):
        load_model(tmp_path / "m.pt")


def test_text_file(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(tmp_path / "notes.pt")


def test_foreign_checkpoint(tmp_path):
    torch.save({"state_dict": torch.nn.Linear(2, 2).state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Sketchlab Sketch-RNN checkpoint"):
        load_model(tmp_path / "other.pt")


def test_code_carrying_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"format": "x", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*would run code when loaded are refused") as e:
        load_model(tmp_path / "evil.pt")
    assert "weights_only" not in str(e.value)  # torch's advice to load it unsafely is not passed on


def test_weights_that_do_not_fit_the_config(tmp_path):
    config = Config(enc_size=8, dec_size=8, z_size=4, num_mixture=2)
    state = SketchRNN(config).state_dict()
    config.dec_size = 16
    save_checkpoint({"config": config.to_dict(), "model": state, "scale_factor": 1.0, "n_max": 5, "step": 0},
                    tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit the model"):
        load_model(tmp_path / "mismatch.pt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "none.pt")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_committed_checkpoint_loads_every_weight_under_its_own_name(path):
    model, payload = load_model(path)
    weights = model.state_dict()
    assert list(weights) == list(payload["model"])
    for name, value in payload["model"].items():
        assert torch.equal(weights[name], value), name
    # Trained weights draw sketches of tens of points that end (simple categories such as apple
    # from simplified files: about 25); random ones end within a few points (a median of 0.5 to 1.5).
    samples = sample(model, n=8, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert samples.ended.all() and statistics.median(map(len, samples.strokes)) >= 15


@pytest.fixture
def run_folder(fixture_data_dir, tmp_path):
    """A run of 2 steps: its best.pt and last.pt."""
    config = Config(categories=("circle",), enc_size=8, dec_size=8, z_size=4, num_mixture=2, batch_size=10, eval_every=2)
    Run(config, load_sketch_data(["circle"], fixture_data_dir), tmp_path / "run", "cpu").train(2)
    return tmp_path / "run"


def relabel(path, format):
    torch.save({**load_checkpoint(path), "format": format}, path)


@pytest.mark.parametrize("old_format", ["sketchlab.sketch_rnn/1", "sketchlab.sketch_rnn/2"])
def test_older_formats_weights_load_for_sampling_and_to_start_a_run_but_their_training_state_does_not_resume(
        old_format, run_folder):
    for name in ("best.pt", "last.pt"):
        relabel(run_folder / name, old_format)
    model, _ = load_model(run_folder / "best.pt")
    load_initial_weights(SketchRNN(model.config), run_folder / "best.pt")
    with pytest.raises(CheckpointError, match=f"last.pt: is a checkpoint of format {old_format}, whose "
                                              "training state this version does not resume"):
        load_training_checkpoint(run_folder / "last.pt")


def test_weights_only_or_a_partial_training_state_does_not_resume(run_folder):
    with pytest.raises(CheckpointError, match="best.pt: holds weights only and cannot resume training"):
        load_training_checkpoint(run_folder / "best.pt")
    payload = load_checkpoint(run_folder / "last.pt")
    del payload["seed"], payload["window"]
    save_checkpoint(payload, run_folder / "last.pt")
    with pytest.raises(CheckpointError, match=r"last.pt: lacks part of a training state \(seed, window\)"):
        load_training_checkpoint(run_folder / "last.pt")


def test_an_unknown_format_is_refused(run_folder):
    relabel(run_folder / "best.pt", "sketchlab.sketch_rnn/4")
    with pytest.raises(CheckpointError, match="not a Sketchlab Sketch-RNN checkpoint"):
        load_model(run_folder / "best.pt")
