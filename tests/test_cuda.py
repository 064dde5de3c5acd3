"""The model, training, sampling and commands on a CUDA GPU: the same numbers as on the CPU, and
runs that move between the two. Skipped where there is no GPU (CI has none)."""

import copy
import io
import json
import shutil

import numpy as np
import pytest
import torch
from django.core.management import call_command

from generator.checkpoint import load_checkpoint, load_model, resolve_device
from generator.data import load_sketch_data
from generator.model import Config, SketchRNN
from generator.sample import encode, interpolate, sample
from generator.train import Run, batch_losses, to_tensors
from ratings.models import Study
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=20, eval_every=3)
CATEGORIES = ("circle", "square")


@pytest.fixture
def data(fixture_data_dir):
    return load_sketch_data(list(CATEGORIES), fixture_data_dir)


def losses_and_gradients(model, drawings, n_max, device, dtype=torch.float32):
    model = model.to(device, dtype)
    model.zero_grad(set_to_none=True)
    batch, lengths = to_tensors(drawings, device)
    l_r, l_kl, _ = batch_losses(model, batch.to(dtype), lengths, n_max)
    (l_r + l_kl).backward()
    return [l_r.item(), l_kl.item()], {name: p.grad.double().cpu() for name, p in model.named_parameters()}


def relative_error(value, reference):
    return float((value - reference).norm() / reference.norm())


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_losses_and_gradients_on_the_gpu_are_as_accurate_as_on_the_cpu(cell, data):
    torch.manual_seed(0)
    model = SketchRNN(Config(categories=CATEGORIES, cell=cell, recurrent_dropout=0.0, **TINY))
    with torch.no_grad():  # sigma ~ 0, so z = mu on every device, whatever its random stream
        model.to_sigma_hat.bias.fill_(-40.0)
    model.train()
    drawings = data.splits["train"][:20]
    exact = losses_and_gradients(copy.deepcopy(model), drawings, data.n_max, "cpu", torch.float64)
    on_cpu = losses_and_gradients(copy.deepcopy(model), drawings, data.n_max, "cpu")
    on_gpu = losses_and_gradients(copy.deepcopy(model), drawings, data.n_max, "cuda")
    assert on_gpu[0] == pytest.approx(exact[0], rel=1e-4)
    for name, reference in exact[1].items():
        # Against float64: float32 on the CPU lands far under 1e-3; the GPU may use TF32 (near 3e-4).
        cpu_error, gpu_error = relative_error(on_cpu[1][name], reference), relative_error(on_gpu[1][name], reference)
        assert gpu_error < max(1e-3, 10 * cpu_error), f"{name}: {gpu_error:.2e} on the GPU, {cpu_error:.2e} on the CPU"


@pytest.mark.filterwarnings("error:RNN module weights are not part of single contiguous chunk")
@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_a_gpu_run_resumes_as_it_would_have_gone_on(cell, data, tmp_path):
    # The layer-norm cell's recurrent dropout draws from the GPU's generator: it must be restored too.
    config = Config(categories=CATEGORIES, cell=cell, recurrent_dropout=0.2, ema_decay=0.5, **TINY)
    straight = Run(config, data, tmp_path / "straight", "cuda", seed=3)
    straight.train(8)
    Run(config, data, tmp_path / "halves", "cuda", seed=3).train(4)
    second = Run(config, data, tmp_path / "halves", "cuda", seed=3, resume=True)
    assert second.step == 4
    second.train(8)
    for name, value in straight.model.state_dict().items():
        assert value.is_cuda
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_a_gpu_run_goes_on_on_the_cpu_and_back(data, tmp_path):
    config = Config(categories=CATEGORIES, cell="layer_norm", **TINY)
    Run(config, data, tmp_path, "cuda").train(3)
    on_cpu = Run(config, data, tmp_path, "cpu", resume=True)
    on_cpu.train(6)
    assert all(not p.is_cuda for p in on_cpu.model.parameters())
    back = Run(config, data, tmp_path, "cuda", resume=True)
    assert back.step == 6
    back.train(9)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 9


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_sampling_on_the_gpu(cell, fixture_data_dir):
    torch.manual_seed(0)
    model = SketchRNN(Config(categories=CATEGORIES, cell=cell, **TINY)).to("cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    samples = sample(model, n=7, temperature=0.8, max_len=30, generator=generator)
    assert len(samples) == 7 and samples.ended.shape == (7,)
    assert all(s.shape[1] == 3 and len(s) <= 30 for s in samples.strokes)
    assert all(len(s) == 30 for s, ended in zip(samples.strokes, samples.ended) if not ended)

    pig, _ = load_model(ROOT / "fixtures" / "checkpoints" / "pig.pt", "cuda")  # whole greedy sketches
    z = torch.randn(3, pig.config.z_size, device="cuda")
    greedy = [sample(pig, z=z, temperature=0, generator=torch.Generator(device="cuda").manual_seed(seed))
              for seed in (1, 2)]
    assert all(len(s) >= 20 for s in greedy[0].strokes)
    for a, b in zip(greedy[0].strokes, greedy[1].strokes):
        np.testing.assert_array_equal(a, b)

    drawings = load_sketch_data(["circle"], fixture_data_dir).splits["test"][:2]
    codes = encode(model, drawings, generator=generator)
    assert codes.is_cuda and codes.shape == (2, TINY["z_size"])
    assert len(sample(model, z=interpolate(codes[0], codes[1], 4), temperature=0.3, max_len=10)) == 4


def test_train_and_evaluate_commands_use_the_gpu(fixture_data_dir, tmp_path, capsys):
    assert resolve_device("auto").type == "cuda"
    out = tmp_path / "run"
    call_command("train_sketch_rnn", "--categories", "circle,square", "--steps", "40", "--eval-every", "10",
                 "--out", str(out), "--data-dir", str(fixture_data_dir), "--cell", "layer_norm")
    assert "Done: step 40" in capsys.readouterr().out
    model, payload = load_model(out / "best.pt", "cpu")  # a GPU checkpoint loads on the CPU
    assert payload["step"] > 0 and all(not p.is_cuda for p in model.parameters())

    results = {}
    for device in ("cuda", "cpu"):
        stdout = io.StringIO()
        call_command("evaluate_sketch_rnn", "--checkpoint", str(out / "best.pt"), "--device", device,
                     "--data-dir", str(fixture_data_dir), stdout=stdout)
        results[device] = json.loads(stdout.getvalue().strip().splitlines()[-1])
    # z is drawn from each device's own random stream, so the numbers agree closely, not exactly.
    assert results["cuda"]["n"] == results["cpu"]["n"]
    assert results["cuda"]["L_R"] == pytest.approx(results["cpu"]["L_R"], abs=0.05)
    assert results["cuda"]["L_KL"] == pytest.approx(results["cpu"]["L_KL"], abs=0.05)


@pytest.mark.django_db
def test_generate_samples_on_the_gpu(fixture_data_dir, settings, tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    for category in CATEGORIES:
        data = load_sketch_data([category], fixture_data_dir, max_len=40)
        config = Config(categories=(category,), cell="layer_norm", max_seq_len=40, **TINY)
        Run(config, data, tmp_path / category, "cuda").train(3)
        shutil.copy(tmp_path / category / "best.pt", demo / f"{category}.pt")
    settings.DEMO_CHECKPOINT_DIR = demo
    call_command("generate_samples", "--study", "gpu", "--real", "4", "--generated", "4", "--device", "cuda",
                 stdout=io.StringIO())
    generated = Study.objects.get(slug="gpu").stimuli.filter(source="generated")
    assert generated.count() == 4
    assert all(stimulus.png.startswith(b"\x89PNG") for stimulus in generated)
