import io
import re

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from generator.render import CAPTION_SIZE
from tests.conftest import ROOT


def test_grid_of_real_drawings(fixture_data_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    call_command("preview_sketches", "--category", "circle", "--count", "10", "--columns", "5",
                 "--out", str(out), "--data-dir", str(fixture_data_dir))
    assert "wrote 10 sketches" in capsys.readouterr().out
    assert Image.open(io.BytesIO(out.read_bytes())).size[0] == 5 * 128


def test_unknown_category_is_a_clear_error(fixture_data_dir, tmp_path):
    with pytest.raises(CommandError, match="no data for category 'unicorn'.*fetch_sketches"):
        call_command("preview_sketches", "--category", "unicorn", "--out", str(tmp_path / "x.png"),
                     "--data-dir", str(fixture_data_dir))


def test_needs_a_category_or_a_checkpoint(tmp_path):
    with pytest.raises(CommandError, match="one of the arguments --category --checkpoint is required"):
        call_command("preview_sketches", "--out", str(tmp_path / "x.png"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CommandError, match="no such checkpoint"):
        call_command("preview_sketches", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.png"))


DEMO_PIG = ROOT / "fixtures" / "checkpoints" / "pig.pt"


def test_grid_of_samples_from_the_committed_demo_checkpoint(tmp_path, capsys):
    out = tmp_path / "samples.png"
    call_command("preview_sketches", "--checkpoint", str(DEMO_PIG), "--count", "12", "--columns", "4",
                 "--temperature", "0.5", "--out", str(out))
    text = capsys.readouterr().out
    never_ended = int(re.search(r"(\d+) of 12 samples did not end within 250 points", text).group(1))
    assert never_ended <= 3  # the trained model ends its sketches (2% never end at this temperature)
    assert "wrote 12 sketches" in text
    assert Image.open(io.BytesIO(out.read_bytes())).size == (4 * 128, 3 * (128 + CAPTION_SIZE + 5))  # captions under cells


def test_the_same_seed_draws_the_same_samples(tmp_path):
    paths = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("1", "1", "2")):
        call_command("preview_sketches", "--checkpoint", str(DEMO_PIG), "--count", "4", "--seed", seed,
                     "--out", str(path))
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--temperature", "-0.1"], "--temperature must be 0 or more"),
    (["--count", "0"], "--count must be at least 1"),
    (["--temperature", "nan"], "--temperature must be a finite number, not nan"),
    (["--temperature", "inf"], "--temperature must be a finite number, not inf"),
])
def test_bad_sampling_options(args, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("preview_sketches", "--checkpoint", str(DEMO_PIG), "--out", str(tmp_path / "x.png"), *args)


@pytest.mark.parametrize("source", [["--category", "circle"], ["--checkpoint", str(DEMO_PIG)]])
@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_seed_out_of_range(source, seed, fixture_data_dir, tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(CommandError, match="--seed must be between 0 and 9223372036854775807"):
        call_command("preview_sketches", *source, "--seed", seed, "--out", str(out), "--data-dir", str(fixture_data_dir))
    assert not out.exists()


def test_empty_category_is_a_clear_error(fixture_data_dir, tmp_path):
    with pytest.raises(CommandError, match="--category needs a category name"):
        call_command("preview_sketches", "--category", "", "--out", str(tmp_path / "x.png"),
                     "--data-dir", str(fixture_data_dir))


@pytest.mark.parametrize("out", ["folder", "afile/x.png", ""])
def test_an_unwritable_out_is_a_clear_error_and_loses_nothing(out, fixture_data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --out "" is the current folder
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "kept.png").write_bytes(b"kept")
    (tmp_path / "afile").write_bytes(b"kept")
    with pytest.raises(CommandError, match=rf"Could not write {re.escape(out or '.')}: "):
        call_command("preview_sketches", "--category", "circle", "--count", "2", "--out", out,
                     "--data-dir", str(fixture_data_dir))
    assert (tmp_path / "folder" / "kept.png").read_bytes() == (tmp_path / "afile").read_bytes() == b"kept"


@pytest.fixture
def tiny_checkpoint(fixture_data_dir, tmp_path):
    """make(conditional=True) -> a checkpoint of an untrained tiny model of the circles."""
    import torch

    from generator.checkpoint import save_checkpoint
    from generator.data import load_sketch_data
    from generator.model import Config, SketchRNN

    def make(conditional=True):
        data = load_sketch_data(["circle"], fixture_data_dir)
        config = Config(categories=("circle",), enc_size=8, dec_size=8, z_size=4, num_mixture=2,
                        conditional=conditional, max_seq_len=40)
        torch.manual_seed(0)
        path = tmp_path / f"tiny-{conditional}.pt"
        save_checkpoint({"config": config.to_dict(), "model": SketchRNN(config).state_dict(),
                         "scale_factor": data.scale_factor, "n_max": data.n_max, "step": 0}, path)
        return path

    return make


def test_interpolate_decodes_codes_evenly_spaced_between_two_drawings(tiny_checkpoint, fixture_data_dir, tmp_path,
                                                                     monkeypatch):
    import numpy as np
    import torch

    from generator import sample as sample_module
    from generator.data import load_sketch_data
    from generator.management.commands import preview_sketches

    recorded = {}
    real_encode, real_sample = sample_module.encode, sample_module.sample
    real_sketch_png, real_sheet = preview_sketches.sketch_png, preview_sketches.contact_sheet

    def encode(*args, **kwargs):
        recorded["codes"] = real_encode(*args, **kwargs)
        return recorded["codes"]

    def sample(model, z=None, **kwargs):
        recorded["z"] = z
        return real_sample(model, z=z, **kwargs)

    def sketch_png(drawing):
        recorded.setdefault("drawings", []).append(drawing)
        return real_sketch_png(drawing)

    def contact_sheet(images, columns, captions):
        recorded["captions"] = captions
        return real_sheet(images, columns=columns, captions=captions)

    monkeypatch.setattr(sample_module, "encode", encode)
    monkeypatch.setattr(sample_module, "sample", sample)
    monkeypatch.setattr(preview_sketches, "sketch_png", sketch_png)
    monkeypatch.setattr(preview_sketches, "contact_sheet", contact_sheet)
    call_command("preview_sketches", "--checkpoint", str(tiny_checkpoint()), "--interpolate", "--count", "5",
                 "--seed", "3", "--out", str(tmp_path / "x.png"), "--data-dir", str(fixture_data_dir))

    data = load_sketch_data(["circle"], fixture_data_dir, max_len=40)
    first, last = (int(caption.removeprefix("test ")) for caption in (recorded["captions"][0], recorded["captions"][-1]))
    assert first != last and recorded["captions"][1:-1] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    unit = np.array([data.scale_factor, data.scale_factor, 1])
    np.testing.assert_allclose(recorded["drawings"][0], data.splits["test"][first] * unit, rtol=1e-6)
    np.testing.assert_allclose(recorded["drawings"][-1], data.splits["test"][last] * unit, rtol=1e-6)
    start, end = recorded["codes"]
    for k, z in enumerate(recorded["z"]):
        torch.testing.assert_close(z, start + (end - start) * k / 4)
    assert len(recorded["drawings"]) == 7


@pytest.mark.parametrize("args, message", [
    (["--category", "circle", "--interpolate"], "--interpolate needs --checkpoint"),
    (["--checkpoint", "CONDITIONAL", "--interpolate", "--count", "1"], "--interpolate needs --count of at least 2"),
    (["--checkpoint", "UNCONDITIONAL", "--interpolate"], "--interpolate needs a conditional model; .* has no encoder"),
])
def test_interpolate_needs_a_conditional_checkpoint_and_two_codes(args, message, tiny_checkpoint, fixture_data_dir,
                                                                  tmp_path):
    paths = {"CONDITIONAL": str(tiny_checkpoint(True)), "UNCONDITIONAL": str(tiny_checkpoint(False))}
    with pytest.raises(CommandError, match=message):
        call_command("preview_sketches", *[paths.get(a, a) for a in args], "--out", str(tmp_path / "x.png"),
                     "--data-dir", str(fixture_data_dir))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("rule", ["paper", "magenta"])
def test_samples_follow_the_temperature_rule_asked_for(rule, tiny_checkpoint, tmp_path, monkeypatch):
    from generator import sample as sample_module

    rules = []
    real_sample = sample_module.sample

    def sample(model, temperature_rule="paper", **kwargs):
        rules.append(temperature_rule)
        return real_sample(model, temperature_rule=temperature_rule, **kwargs)

    monkeypatch.setattr(sample_module, "sample", sample)
    call_command("preview_sketches", "--checkpoint", str(tiny_checkpoint()), "--count", "2", "--out",
                 str(tmp_path / "x.png"), "--temperature-rule", rule)
    assert rules == [rule]
