import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from generator.data import load_sketch_data, stroke5_batch
from generator.model import (
    PRESETS,
    Config,
    SketchRNN,
    kl_loss,
    make_config,
    mixture_log_density,
    reconstruction_loss,
    reverse_within_length,
    split_outputs,
)
from generator.sample import encode, interpolate, sample
from generator.strokes import stroke3_to_stroke5

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=8)


def tiny_model(cell="lstm", conditional=True, seed=0):
    torch.manual_seed(seed)
    return SketchRNN(Config(cell=cell, conditional=conditional, **TINY))


def params_for(mu_x, mu_y, sx, sy, rho, pi, pen_logits=(0.0, 0.0, 0.0)):
    """Mixture parameters for one time step of one sketch, in the layout split_outputs gives."""
    m = len(pi)
    t = lambda v: torch.tensor(v, dtype=torch.float64).reshape(1, 1, m)
    return {
        "log_pi": torch.log(t(pi)), "mu_x": t(mu_x), "mu_y": t(mu_y),
        "log_sigma_x": torch.log(t(sx)), "log_sigma_y": torch.log(t(sy)), "rho": t(rho),
        "pen_logits": torch.tensor(pen_logits, dtype=torch.float64).reshape(1, 1, 3),
    }


def test_mixture_log_density_matches_scipy():
    pi, mx, my, sx, sy, rho = [0.3, 0.7], [0.0, 1.0], [0.5, -1.0], [1.0, 0.4], [2.0, 0.3], [0.5, -0.8]
    params = params_for(mx, my, sx, sy, rho, pi)
    x, y = 0.7, -0.4
    expected = math.log(sum(
        pi[j] * multivariate_normal.pdf([x, y], [mx[j], my[j]],
                                        [[sx[j] ** 2, rho[j] * sx[j] * sy[j]], [rho[j] * sx[j] * sy[j], sy[j] ** 2]])
        for j in range(2)))
    got = mixture_log_density(params, torch.tensor([[x]], dtype=torch.float64), torch.tensor([[y]], dtype=torch.float64))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_mixture_density_integrates_to_one():
    torch.manual_seed(1)
    raw = torch.randn(1, 1, 6 * 4 + 3, dtype=torch.float64) * 0.5
    params = {k: v.expand(401, 401, -1) for k, v in split_outputs(raw, Config(num_mixture=4)).items()}
    grid = torch.linspace(-10, 10, 401, dtype=torch.float64)
    xs, ys = torch.meshgrid(grid, grid, indexing="ij")
    density = torch.exp(mixture_log_density(params, xs, ys))
    step = (grid[1] - grid[0]).item()
    assert density.sum().item() * step * step == pytest.approx(1.0, abs=0.01)


def test_reconstruction_loss_equals_the_formula_on_a_hand_example():
    # One sketch, T = 3 target steps: two real points then the end; one unit normal
    # component; pen logits all zero (each pen state has probability 1/3); n_max = 4.
    params = {k: v.expand(1, 3, -1) for k, v in params_for([0.0], [0.0], [1.0], [1.0], [0.0], [1.0]).items()}
    targets = torch.tensor([[[1, 0, 1, 0, 0], [0, 2, 0, 1, 0], [0, 0, 0, 0, 1]]], dtype=torch.float64)
    l_r, l_s, l_p = reconstruction_loss(params, targets, n_max=4)
    log_n = lambda x, y: -math.log(2 * math.pi) - (x * x + y * y) / 2
    expected_l_s = -(log_n(1, 0) + log_n(0, 2)) / 4
    expected_l_p = 3 * math.log(3) / 4  # every step's pen, the end row included
    assert l_s.item() == pytest.approx(expected_l_s)
    assert l_p.item() == pytest.approx(expected_l_p)
    assert l_r.item() == pytest.approx(expected_l_s + expected_l_p)


def test_kl_loss_formula():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    sigma_hat = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    terms = [1 + 0 - 1 - 1, 1 + math.log(2) - 0 - 2, 1 + 0 - 0 - 1, 1 + 0 - 4 - 1]
    assert kl_loss(mu, sigma_hat).item() == pytest.approx(-0.5 * sum(terms) / 4)


def test_schedules_follow_the_reference():
    c = Config()
    assert c.lr_at(0) == pytest.approx(1e-3)
    assert c.lr_at(100000) == pytest.approx(1e-5, rel=0.01)
    assert c.kl_weight_at(0) == pytest.approx(0.01)
    assert c.kl_weight_at(10000) == pytest.approx(0.5 - 0.49 * 0.99995**10000)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_sets_its_values_over_the_defaults_and_overrides_win_over_it(preset):
    config = make_config(preset)
    assert {key: getattr(config, key) for key in PRESETS[preset]} == PRESETS[preset]
    assert {key: getattr(config, key) for key in ("lr", "cell", "kl_weight")} == {
        key: getattr(Config(), key) for key in ("lr", "cell", "kl_weight")}  # not in the preset: the defaults
    overridden = make_config(preset, z_size=7, cell="lstm")
    assert (overridden.z_size, overridden.cell, overridden.enc_size) == (7, "lstm", config.enc_size)


def test_an_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'huge' \\(choose from paper, cpu\\)"):
        make_config("huge")


def test_reverse_within_length():
    x = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1)
    out = reverse_within_length(x, torch.tensor([3, 5]))
    assert out[0, :, 0].tolist() == [2, 1, 0, 3, 4]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 5]


def test_the_fused_cells_checkpoint_names_its_encoder_directions_enc_fwd_and_enc_bwd(fixture_data_dir):
    """Checkpoints of the fused cell hold two nn.LSTMs, enc_fwd and enc_bwd: z's mean computed
    from them directly (enc_fwd reading each drawing, enc_bwd reading it reversed) is the model's."""
    model = tiny_model("lstm").eval()
    weights = model.state_dict()
    assert [k for k in weights if k.startswith("enc")] == [
        f"enc_{direction}.lstm.{name}_l0" for direction in ("fwd", "bwd")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    drawing = torch.from_numpy(stroke5_batch(load_sketch_data(["circle"], fixture_data_dir).splits["test"][:1])[0][:, 1:])
    last_outputs = []
    for direction, strokes in (("fwd", drawing), ("bwd", drawing.flip(1))):
        lstm = torch.nn.LSTM(5, TINY["enc_size"], batch_first=True)
        lstm.load_state_dict({k.removeprefix(f"enc_{direction}.lstm."): v for k, v in weights.items()
                              if k.startswith(f"enc_{direction}.")})
        last_outputs.append(lstm(strokes)[0][:, -1])
    with torch.no_grad():
        _, mu, _ = model.encode(drawing, torch.tensor([drawing.shape[1]]))
        torch.testing.assert_close(mu, model.to_mu(torch.cat(last_outputs, dim=1)))
    # ...and a model loads them back.
    other = tiny_model("lstm", seed=1)
    other.load_state_dict(weights)
    for name, value in other.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_encoder_reads_only_the_real_points(cell, fixture_data_dir):
    model = tiny_model(cell).eval()
    drawings = load_sketch_data(["circle"], fixture_data_dir).splits["test"][:4]
    short, lengths = stroke5_batch(drawings)
    padded, _ = stroke5_batch(drawings, pad_to=short.shape[1] + 20)
    lengths = torch.from_numpy(lengths)
    _, mu_short, sigma_short = model.encode(torch.from_numpy(short[:, 1:]), lengths)
    _, mu_padded, sigma_padded = model.encode(torch.from_numpy(padded[:, 1:]), lengths)
    torch.testing.assert_close(mu_short, mu_padded)
    torch.testing.assert_close(sigma_short, sigma_padded)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_output_dropout_drops_decoder_outputs_in_training_only(cell, fixture_data_dir):
    torch.manual_seed(0)
    model = SketchRNN(Config(cell=cell, conditional=False, recurrent_dropout=0.0, output_dropout=0.5, **TINY))
    plain = SketchRNN(Config(cell=cell, conditional=False, recurrent_dropout=0.0, **TINY))
    plain.load_state_dict(model.state_dict())
    batch, lengths = stroke5_batch(load_sketch_data(["circle"], fixture_data_dir).splits["test"][:4])
    inputs = torch.from_numpy(batch[:, :-1])
    state = model.initial_state(None, 4, "cpu")
    hidden = plain.dec(inputs[None], tuple(s[None] for s in state))[0][0]
    # In training each decoder output is zeroed (and the rest scaled by 2) before the mixture layer...
    raw, _ = model.train().decode(inputs, None, state, generator=torch.Generator().manual_seed(1))
    kept = (torch.rand(hidden.shape, generator=torch.Generator().manual_seed(1)) < 0.5) / 0.5
    torch.testing.assert_close(raw, plain.out(hidden * kept))
    assert 0.3 < (kept == 0).float().mean() < 0.7
    # ...and never when sampling or evaluating.
    torch.testing.assert_close(model.eval().decode(inputs, None, state)[0], plain.eval().decode(inputs, None, state)[0])


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_a_training_pass_given_a_generator_draws_all_its_random_numbers_from_it(cell, fixture_data_dir):
    # What lets every rank of a process group draw its own random numbers and still repeat exactly.
    model = SketchRNN(Config(cell=cell, output_dropout=0.3, **TINY)).train()
    batch, lengths = (torch.from_numpy(a) for a in stroke5_batch(load_sketch_data(["circle"], fixture_data_dir).splits["test"][:4]))
    global_state = torch.get_rng_state()
    outputs = [model(batch, lengths, torch.Generator().manual_seed(seed))[0]["mu_x"] for seed in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), global_state)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert not torch.equal(outputs[0], outputs[2])


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_bf16_runs_the_training_pass_in_bfloat16_and_leaves_evaluation_in_float32(cell, fixture_data_dir):
    torch.manual_seed(0)
    fp32 = SketchRNN(Config(cell=cell, recurrent_dropout=0.0, **TINY))
    bf16 = SketchRNN(Config(cell=cell, recurrent_dropout=0.0, precision="bf16", **TINY))
    bf16.load_state_dict(fp32.state_dict())
    batch, lengths = (torch.from_numpy(a) for a in stroke5_batch(load_sketch_data(["circle"], fixture_data_dir).splits["test"][:8]))

    def loss_and_grads(model):
        model.zero_grad()
        params, mu, sigma_hat = model(batch, lengths, torch.Generator().manual_seed(1))
        assert all(value.dtype == torch.float32 for value in (*params.values(), mu, sigma_hat) if value.is_floating_point())
        loss = reconstruction_loss(params, batch[:, 1:], 40)[0] + kl_loss(mu, sigma_hat)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (loss_32, grads_32), (loss_16, grads_16) = loss_and_grads(fp32.train()), loss_and_grads(bf16.train())
    assert loss_16 != loss_32 and loss_16 == pytest.approx(loss_32, rel=1e-2)  # bfloat16 keeps 8 bits of mantissa
    assert grads_16.dtype == torch.float32 and torch.isfinite(grads_16).all()
    assert float((grads_16 - grads_32).norm() / grads_32.norm()) < 0.05
    fp32.eval(), bf16.eval()
    with torch.no_grad():
        torch.testing.assert_close(bf16(batch, lengths, torch.Generator().manual_seed(1))[0]["mu_x"],
                                   fp32(batch, lengths, torch.Generator().manual_seed(1))[0]["mu_x"], rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
@pytest.mark.parametrize("conditional", [True, False])
def test_gradients_are_finite_even_for_wild_inputs(cell, conditional, fixture_data_dir):
    model = tiny_model(cell, conditional).train()
    drawings = load_sketch_data(["square"], fixture_data_dir).splits["train"][:8]
    drawings[0] = drawings[0] * np.array([300, 300, 1], dtype=np.float32)  # far outside the data's scale
    batch, lengths = stroke5_batch(drawings)
    params, mu, sigma_hat = model(torch.from_numpy(batch), torch.from_numpy(lengths))
    l_r, _, _ = reconstruction_loss(params, torch.from_numpy(batch[:, 1:]), 40)
    loss = l_r + (kl_loss(mu, sigma_hat) if conditional else 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_sampling_shapes_and_termination(cell):
    model = tiny_model(cell)
    samples = sample(model, n=5, temperature=0.8, max_len=30, generator=torch.Generator().manual_seed(0))
    assert len(samples) == 5 and samples.ended.shape == (5,)
    assert all(s.ndim == 2 and s.shape[1] == 3 and len(s) <= 30 for s in samples.strokes)
    for s, ended in zip(samples.strokes, samples.ended):
        if not ended:
            assert len(s) == 30  # ran to the limit: reported as not ended
    # A decoder biased hard towards p3 ends every sketch at once.
    with torch.no_grad():
        model.out.bias[:3] = torch.tensor([-50.0, -50.0, 50.0])
    ended = sample(model, n=4, temperature=1.0, max_len=30)
    assert ended.ended.all() and all(len(s) == 0 for s in ended.strokes)
    # ...and one biased away from p3 never does, which is reported.
    with torch.no_grad():
        model.out.bias[:3] = torch.tensor([50.0, -50.0, -50.0])
    never = sample(model, n=4, temperature=1.0, max_len=30)
    assert not never.ended.any() and all(len(s) == 30 for s in never.strokes)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
@pytest.mark.parametrize("conditional", [True, False])
def test_sampling_steps_equal_teacher_forcing(cell, conditional, fixture_data_dir):
    """Sampling's decode_step, fed the rows of a drawing one at a time, gives what decode gives
    for the whole drawing at once (which reads z another way on the layer-norm cell)."""
    model = tiny_model(cell, conditional).eval()
    batch, _ = stroke5_batch(load_sketch_data(["circle"], fixture_data_dir).splits["test"][:3])
    strokes = torch.from_numpy(batch[:, :-1])
    z = torch.randn(3, TINY["z_size"]) if conditional else None
    state = model.initial_state(z, 3, "cpu")
    with torch.no_grad():
        whole, _ = model.decode(strokes, z, state)
        steps = []
        for t in range(strokes.shape[1]):
            raw, state = model.decode_step(strokes[:, t], z, state)
            steps.append(raw)
    torch.testing.assert_close(torch.stack(steps, dim=1), whole, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def pig():
    """The committed pig model: its greedy sketches are whole drawings, not empty ones."""
    from generator.checkpoint import load_model
    from tests.conftest import ROOT

    return load_model(ROOT / "fixtures" / "checkpoints" / "pig.pt")[0]


def test_greedy_sampling_takes_the_most_likely_choice_at_every_step(pig):
    z = torch.randn(3, pig.config.z_size, generator=torch.Generator().manual_seed(0))
    greedy = sample(pig, z=z, temperature=0, generator=torch.Generator().manual_seed(1))
    assert greedy.ended.all() and all(len(s) >= 20 for s in greedy.strokes)
    for k, strokes in enumerate(greedy.strokes):
        # The decoder fed the sketch's own rows: each row is its step's most likely component's
        # mean offset and most likely pen state, up to the end row.
        rows = torch.from_numpy(stroke3_to_stroke5(strokes, len(strokes) + 1))
        inputs = torch.cat([torch.tensor([[0.0, 0, 1, 0, 0]]), rows[:-1]])[None]
        with torch.no_grad():
            raw, _ = pig.decode(inputs, z[k:k + 1], pig.initial_state(z[k:k + 1], 1, "cpu"))
        params = {name: value[0] for name, value in split_outputs(raw, pig.config).items()}
        component = params["log_pi"].argmax(dim=1)[:, None]
        means = torch.cat([params["mu_x"].gather(1, component), params["mu_y"].gather(1, component)], dim=1)
        torch.testing.assert_close(rows[:-1, :2], means[:-1], rtol=1e-4, atol=1e-4)
        assert torch.equal(params["pen_logits"].argmax(dim=1), rows[:, 2:].argmax(dim=1))
    # ...whatever the generator.
    again = sample(pig, z=z, temperature=0, generator=torch.Generator().manual_seed(2))
    for x, y in zip(greedy.strokes, again.strokes):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("temperature", [1e-40, 5e-324])
def test_a_tiny_temperature_samples_greedily(temperature, pig):
    """Dividing by it would overflow and make the softmax NaN."""
    z = torch.randn(3, pig.config.z_size, generator=torch.Generator().manual_seed(0))
    tiny = sample(pig, z=z, temperature=temperature, generator=torch.Generator().manual_seed(1))
    greedy = sample(pig, z=z, temperature=0)
    assert all(len(s) >= 20 for s in greedy.strokes)
    for x, y in zip(tiny.strokes, greedy.strokes):
        np.testing.assert_array_equal(x, y)


def test_sampling_applies_the_scale_factor(pig):
    z = torch.randn(2, pig.config.z_size, generator=torch.Generator().manual_seed(0))
    unit = sample(pig, z=z, temperature=0)
    scaled = sample(pig, z=z, temperature=0, scale_factor=7.0)
    for x, y in zip(unit.strokes, scaled.strokes):
        assert len(x) >= 20
        np.testing.assert_allclose(y[:, :2], x[:, :2] * 7.0, rtol=1e-5)
        np.testing.assert_array_equal(y[:, 2], x[:, 2])


def test_unconditional_model_samples_without_z():
    model = tiny_model(conditional=False)
    assert not hasattr(model, "to_mu")
    assert len(sample(model, n=3, temperature=0.5, max_len=10)) == 3


def test_conditional_encode_and_interpolate(fixture_data_dir):
    model = tiny_model("layer_norm")
    drawings = load_sketch_data(["circle"], fixture_data_dir).splits["test"][:2]
    z = encode(model, drawings, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, TINY["z_size"])
    path = interpolate(z[0], z[1], 5)
    torch.testing.assert_close(path[0], z[0])
    torch.testing.assert_close(path[-1], z[1])
    torch.testing.assert_close(path[2], (z[0] + z[1]) / 2)
    assert len(sample(model, z=path, temperature=0.3, max_len=10)) == 5
