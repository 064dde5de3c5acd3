"""The reference's behaviours (magenta's sketch_rnn), each pinned by hand-made inputs and numbers
computed here, in float64 numpy from the reference's formulas, not by the code under test: its
training loss, its evaluation protocol, its temperature rule, its layer norm and output-layer
initialisation, the faithful mode's batches, the log-sigma clamp's count, and where the stroke
conversions differ from its utils.py."""

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from generator.cells import make_cell
from generator.data import load_sketch_data
from generator.model import REFERENCE, Config, SketchRNN, make_config, reconstruction_loss, split_outputs
from generator.reference_evaluation import evaluate_reference
from generator.sample import TEMPERATURE_RULES, sample, sample_next
from generator.strokes import lines_to_stroke3, stroke3_to_lines, stroke5_to_stroke3
from generator.train import Run, evaluate

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=8)


# ---------------------------------------------------------------------------------------------
# The reference's loss, from its formulas (model.py: tf_2d_normal, get_lossfunc), in float64


def reference_drawing_loss(raw, targets, n_real, n_max):
    """L_R of one drawing as the reference computes it: raw decoder outputs (T, 6M + 3) in its
    layout (pen logits, then pi, mu_x, mu_y, sigma_x, sigma_y, rho, M each), stroke-5 targets
    (T, 5); -log(sum_j pi_j N_j + 1e-6) over the real points, the pen's cross-entropy over all T
    steps, divided by n_max."""
    raw, targets = np.asarray(raw, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    m = (raw.shape[1] - 3) // 6
    pen_logits = raw[:, :3]
    pi_logits, mu1, mu2, log_s1, log_s2, rho_raw = (raw[:, 3 + k * m:3 + (k + 1) * m] for k in range(6))
    pi = np.exp(pi_logits) / np.exp(pi_logits).sum(axis=1, keepdims=True)
    s1, s2, rho = np.exp(log_s1), np.exp(log_s2), np.tanh(rho_raw)
    norm1, norm2 = targets[:, :1] - mu1, targets[:, 1:2] - mu2
    z = (norm1 / s1) ** 2 + (norm2 / s2) ** 2 - 2 * rho * norm1 * norm2 / (s1 * s2)
    normal = np.exp(-z / (2 * (1 - rho**2))) / (2 * np.pi * s1 * s2 * np.sqrt(1 - rho**2))
    l_s = -np.log((pi * normal).sum(axis=1) + 1e-6)[:n_real].sum()
    pen = np.exp(pen_logits) / np.exp(pen_logits).sum(axis=1, keepdims=True)
    l_p = -(targets[:, 2:] * np.log(pen)).sum()
    return (l_s + l_p) / n_max


def raw_outputs(m, steps, seed):
    """Raw decoder outputs of a mixture of m components over `steps` steps; rho_raw kept small
    (the model's RHO_LIMIT scales tanh by 1 - 1e-4, a difference of about 1e-4 relative)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 0.7, size=(steps, 6 * m + 3))
    raw[:, 3 + 5 * m:] *= 0.1
    return raw


def test_the_faithful_training_loss_is_the_references_formula_with_its_epsilon():
    """Two drawings, N_max 4: the pen loss over all four steps, -log(density + 1e-6) over the real
    points, one of which lies far out in the mixture's tails, where the 1e-6 matters."""
    m, n_max = 2, 4
    targets = np.array([
        [[0.5, -0.2, 1, 0, 0], [0.1, 0.3, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]],
        [[-0.4, 0.9, 1, 0, 0], [12.0, -9.0, 1, 0, 0], [0.2, 0.2, 0, 1, 0], [0, 0, 0, 0, 1]],  # (12, -9): far out
    ])
    raw = np.stack([raw_outputs(m, n_max, seed) for seed in (1, 2)])
    expected = np.mean([reference_drawing_loss(raw[i], targets[i], n, n_max) for i, n in enumerate([2, 3])])
    params = split_outputs(torch.tensor(raw), replace(Config(num_mixture=m), **REFERENCE))
    params["rho"] = params["rho"] / (1 - 1e-4)  # the formula above has no RHO_LIMIT (see raw_outputs)
    l_r, _, _ = reconstruction_loss(params, torch.tensor(targets), n_max, REFERENCE["density_epsilon"])
    assert l_r.item() == pytest.approx(expected, rel=1e-10)
    # The case exercises the epsilon: without it the loss is another number.
    without, _, _ = reconstruction_loss(params, torch.tensor(targets), n_max)
    assert abs(without.item() - expected) > 0.5


def test_the_faithful_mode_has_the_references_settings_and_keeps_the_fast_defaults_otherwise():
    faithful = make_config("cpu", faithful=True)
    assert faithful.faithful and (faithful.batching, faithful.layer_norm_eps, faithful.output_init,
                                  faithful.density_epsilon) == ("reference", 1e-3, "glorot", 1e-6)
    assert faithful.log_sigma_limit >= 20  # a guard far below the data's resolution, not a bound (see below)
    default = make_config("cpu")
    assert not default.faithful and (default.batching, default.log_sigma_limit, default.layer_norm_eps,
                                     default.output_init, default.density_epsilon) == ("bucketed", 7.0, 1e-5, "torch", 0.0)
    # An explicit setting wins over the faithful mode's.
    assert make_config("cpu", faithful=True, batching="bucketed").batching == "bucketed"


def test_the_faithful_mode_refuses_the_fused_lstm_with_recurrent_dropout_and_says_why():
    with pytest.raises(ValueError, match="fused lstm cell cannot apply.*use the layer_norm cell.*recurrent_dropout=0"):
        make_config("cpu", faithful=True, cell="lstm")
    assert make_config("cpu", faithful=True, cell="lstm", recurrent_dropout=0.0).cell == "lstm"


def test_set_faithful_true_trains_a_run_in_the_faithful_mode(fixture_data_dir, tmp_path, capsys):
    from django.core.management import call_command

    from generator.checkpoint import load_model
    from generator.management.options import parse_overrides

    assert parse_overrides(["faithful=true", "batching=bucketed"]) == {"faithful": True, "batching": "bucketed"}
    call_command("train_sketch_rnn", "--categories", "circle", "--steps", "1", "--eval-every", "1", "--out",
                 str(tmp_path), "--data-dir", str(fixture_data_dir), "--set", "faithful=true", "--set", "enc_size=8",
                 "--set", "dec_size=8", "--set", "z_size=4")
    assert "faithful to the reference" in capsys.readouterr().out
    assert load_model(tmp_path / "best.pt")[0].config.faithful


def padded_targets(drawing, n_max):
    targets = np.zeros((n_max, 5))
    n = len(drawing)
    targets[:n, :2] = drawing[:, :2]
    targets[:n, 2], targets[:n, 3] = 1 - drawing[:, 2], drawing[:, 2]
    targets[n:, 4] = 1
    return targets


def decoder_outputs(model, drawing, z, n_max):
    """The decoder's raw outputs for one drawing, fed its own rows after the start token."""
    targets = padded_targets(drawing, n_max)
    inputs = torch.tensor(np.concatenate([[[0, 0, 1, 0, 0]], targets[:-1]])[None], dtype=torch.float32)
    with torch.no_grad():
        raw, _ = model.decode(inputs, z, model.initial_state(z, 1, "cpu"))
    return raw[0].double().numpy(), targets


def test_faithful_training_pads_to_n_max_and_adds_the_epsilon(fixture_data_dir, tmp_path):
    """One step of a faithful run: its batch, the batcher's next, is padded to N_max, and its L_R
    is the reference's formula on the model's outputs before the step."""
    data = load_sketch_data(["circle", "square"], fixture_data_dir)
    # No augmentation, no dropout, and z's sigma about e^-20, so the step's loss is a function of the weights.
    config = make_config("cpu", faithful=True, categories=("circle", "square"), recurrent_dropout=0.0, random_scale=0.0,
                         augment_stroke_prob=0.0, **TINY)
    run = Run(config, data, tmp_path, "cpu")
    with torch.no_grad():
        run.model.to_sigma_hat.bias.fill_(-40.0)
        # Narrow normals (sigma about e^-3): most real points lie where the density is below 1e-6.
        run.model.out.bias[3 + 3 * config.num_mixture:3 + 5 * config.num_mixture] = -3.0
    indices = copy.deepcopy(run.batcher).next()
    before = copy.deepcopy(run.model).train()
    result = run.train_step()
    assert result["cells"] == len(indices) * data.n_max
    expected = []
    for i in indices:
        drawing = data.splits["train"][i]
        inputs = torch.tensor(padded_targets(drawing, data.n_max)[None], dtype=torch.float32)
        with torch.no_grad():
            _, mu, _ = before.encode(inputs, torch.tensor([len(drawing)]))
        raw, targets = decoder_outputs(before, drawing, mu, data.n_max)
        raw[:, 3 + 5 * config.num_mixture:] = np.arctanh(np.tanh(raw[:, 3 + 5 * config.num_mixture:]) * (1 - 1e-4))
        expected.append(reference_drawing_loss(raw, targets, len(drawing), data.n_max))
    assert result["l_r"] == pytest.approx(np.mean(expected), rel=1e-4)


def test_faithful_batches_are_drawn_uniformly_and_the_default_ones_by_length(fixture_data_dir, tmp_path):
    """The spread of lengths within a batch: the whole data's in a uniform draw, a few points in a
    bucket. A bucketed batch is padded to its longest drawing + 1."""
    data = load_sketch_data(["circle", "square"], fixture_data_dir)
    lengths = np.array([len(d) for d in data.splits["train"]])
    runs = {faithful: Run(make_config("cpu", faithful=faithful, categories=("circle", "square"), augment_stroke_prob=0.0,
                                      **TINY), data, tmp_path / str(faithful), "cpu") for faithful in (False, True)}
    spread = {faithful: np.mean([lengths[b].std() for b in run.batcher.batches]) for faithful, run in runs.items()}
    assert spread[True] == pytest.approx(lengths.std(), rel=0.25)
    assert spread[False] < spread[True] / 2
    run = runs[False]
    longest = lengths[copy.deepcopy(run.batcher).next()].max()
    assert run.train_step()["cells"] == run.config.batch_size * (longest + 1)


# ---------------------------------------------------------------------------------------------
# The reference's evaluation protocol (sketch_rnn_train.evaluate_model)


def test_the_reference_protocol_on_a_tiny_split():
    """Seven drawings, batches of three: sorted by length, the longest left out, L_R the mean of
    the batches' means, L_KL floored per batch, loss = L_R + kl_weight_start x L_KL.

    The model is made so that every figure can be worked out by hand: its decoder ignores z (so z's
    noise changes nothing), and sigma_hat is 0, so each drawing's L_KL is mean(mu^2) / 2."""
    torch.manual_seed(0)
    model = SketchRNN(Config(cell="lstm", **TINY)).eval()
    with torch.no_grad():
        model.z_to_state.weight.zero_()
        model.z_to_state.bias.zero_()
        model.dec.lstm.weight_ih_l0[:, 5:] = 0  # the decoder's z inputs
        model.to_sigma_hat.weight.zero_()
        model.to_sigma_hat.bias.zero_()
        model.to_mu.weight.normal_(0, 0.3)
    rng = np.random.default_rng(3)
    lengths = [9, 4, 12, 6, 3, 10, 7]  # sorted: 3 4 6 | 7 9 10 | 12 (left out)
    drawings = []
    for n in lengths:
        drawing = np.concatenate([rng.normal(0, 1, size=(n, 2)), np.zeros((n, 1))], axis=1).astype(np.float32)
        drawing[[n // 2, n - 1], 2] = 1
        drawings.append(drawing)
    n_max = 12
    per_drawing = {}
    for drawing in drawings:
        targets = torch.tensor(padded_targets(drawing, n_max)[None], dtype=torch.float32)
        with torch.no_grad():
            _, mu, _ = model.encode(targets, torch.tensor([len(drawing)]))
        raw, targets = decoder_outputs(model, drawing, mu, n_max)
        raw[:, 3 + 5 * 3:] = np.arctanh(np.tanh(raw[:, 3 + 5 * 3:]) * (1 - 1e-4))  # the model's RHO_LIMIT
        per_drawing[len(drawing)] = (reference_drawing_loss(raw, targets, len(drawing), n_max),
                                     0.5 * np.mean(mu.double().numpy() ** 2))
    batches = [[3, 4, 6], [7, 9, 10]]
    l_r = np.mean([np.mean([per_drawing[n][0] for n in batch]) for batch in batches])
    kl = [np.mean([per_drawing[n][1] for n in batch]) for batch in batches]
    tolerance = float(np.mean(kl))  # between the two batches' L_KL: the floor binds on one of them only
    model.config = replace(model.config, kl_tolerance=tolerance, kl_weight_start=0.01)
    l_kl = np.mean([max(k, tolerance) for k in kl])
    result = evaluate_reference(model, drawings, n_max, "cpu", batch_size=3)
    assert result["n"] == 6 and result["n_max"] == n_max
    assert result["L_R"] == pytest.approx(l_r, rel=1e-5)
    assert result["L_KL"] == pytest.approx(l_kl, rel=1e-5)
    assert l_kl > max(np.mean(kl), tolerance)  # floored per batch, not once over the mean
    assert result["loss"] == pytest.approx(l_r + 0.01 * l_kl, rel=1e-5)
    with pytest.raises(ValueError, match="whole batches of 8 drawings, and the split has 7"):
        evaluate_reference(model, drawings, n_max, "cpu")


# ---------------------------------------------------------------------------------------------
# Temperature (model.py's sample(): pi and pen by log(p) / tau, sigma by sqrt(tau)^2 = tau)


def one_step_mixture(rows):
    """`rows` copies of one step's mixture: component 0 far away at (100, 100) with pi 0.25,
    component 1 at (1, -1), sigma (0.5, 2), rho 0.6, pi 0.75; pen probabilities 1 : 2 : 1."""
    m = lambda a, b: torch.tensor([a, b], dtype=torch.float64).expand(rows, 2)
    return {"log_pi": torch.log(m(0.25, 0.75)), "mu_x": m(100.0, 1.0), "mu_y": m(100.0, -1.0),
            "log_sigma_x": torch.log(m(1.0, 0.5)), "log_sigma_y": torch.log(m(1.0, 2.0)), "rho": m(0.0, 0.6),
            "pen_logits": torch.log(torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)).expand(rows, 3)}


@pytest.mark.parametrize("rule, sigma_factor", [("paper", 0.5), ("magenta", 0.25)])
def test_the_temperature_rules_on_a_fixed_mixture(rule, sigma_factor):
    """At tau 0.25: pi and the pen as softmax(log p / tau) under both rules (pi 1 : 81, pen
    1 : 16 : 1); sigma times sqrt(tau) = 0.5 (paper) or tau = 0.25 (magenta); rho unchanged."""
    rows = sample_next(one_step_mixture(40000), 0.25, torch.Generator().manual_seed(0), rule).double().numpy()
    near = rows[:, 0] < 50
    assert near.mean() == pytest.approx(81 / 82, abs=0.003)
    assert rows[:, 2:].mean(axis=0) == pytest.approx(np.array([1, 16, 1]) / 18, abs=0.005)
    dx, dy = rows[near, 0], rows[near, 1]
    assert (dx.mean(), dy.mean()) == pytest.approx((1.0, -1.0), abs=0.03)
    assert dx.std() == pytest.approx(0.5 * sigma_factor, rel=0.02)
    assert dy.std() == pytest.approx(2.0 * sigma_factor, rel=0.02)
    assert np.corrcoef(dx, dy)[0, 1] == pytest.approx(0.6, abs=0.02)


def test_sampling_follows_the_rule_it_is_given():
    """A decoder whose output ignores its state: every row is N(0, 1) scaled by the rule at tau 0.25."""
    torch.manual_seed(0)
    model = SketchRNN(Config(cell="lstm", conditional=False, **TINY))
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
        model.out.bias[:3] = torch.tensor([30.0, 0.0, -30.0])  # pen down, never the end
    for rule, factor in (("paper", 0.5), ("magenta", 0.25)):
        strokes = sample(model, n=40, temperature=0.25, max_len=100, generator=torch.Generator().manual_seed(1),
                         temperature_rule=rule).strokes
        assert np.concatenate(strokes)[:, :2].std() == pytest.approx(factor, rel=0.03)
    assert set(TEMPERATURE_RULES) == {"paper", "magenta"}
    with pytest.raises(ValueError, match="unknown temperature rule 'tf'"):
        sample(model, n=1, temperature=0.5, temperature_rule="tf")


# ---------------------------------------------------------------------------------------------
# The layer norm's epsilon and the output layer's initialisation (rnn.py, model.py)


def test_the_layer_norm_cell_uses_the_configured_epsilon():
    """One step of the layer-norm cell from h = 0 on an input whose gate pre-activations vary by
    about 1e-2 (variance 1e-4, where 1e-3 and 1e-5 differ), computed here as the reference's
    LayerNormLSTMCell does (gates i, f, j, o in this project's order; forget bias in the gate bias)."""
    for eps in (1e-3, 1e-5):
        torch.manual_seed(0)
        cell = make_cell(Config(cell="layer_norm", layer_norm_eps=eps), 5, 6).double().eval()
        x = torch.full((1, 2, 5), 0.01, dtype=torch.float64)
        zeros = torch.zeros(1, 2, 6, dtype=torch.float64)
        with torch.no_grad():
            h, c = cell.step(x, (zeros, zeros))
        w = cell.w_ih.detach()[0].numpy()
        gates = (x[0].numpy() @ w).reshape(2, 4, 6)
        norm = lambda v: (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps)
        gates = norm(gates) * cell.gate_gain.detach()[0].numpy() + cell.gate_bias.detach()[0].numpy()
        sig = lambda v: 1 / (1 + np.exp(-v))
        i, f, j, o = gates[:, 0], gates[:, 1], gates[:, 2], gates[:, 3]
        new_c = sig(i) * np.tanh(j)
        new_h = np.tanh(norm(new_c)) * sig(o)
        np.testing.assert_allclose(c[0].numpy(), new_c, rtol=1e-10)
        np.testing.assert_allclose(h[0].numpy(), new_h, rtol=1e-10)
        if eps == 1e-3:
            first = new_h
    assert np.abs(first - new_h).max() > 0.05  # the two epsilons give other cells here


def test_the_glorot_output_layer_is_initialised_as_tensorflows_default():
    """Glorot uniform: the weight within sqrt(6 / (fan_in + fan_out)), the bias (a vector: both
    fans its length) within sqrt(3 / n_out), each spread evenly (std bound / sqrt(3))."""
    torch.manual_seed(0)
    model = SketchRNN(make_config("paper", faithful=True))
    weight, bias = model.out.weight.detach(), model.out.bias.detach()
    n_out, fan_in = weight.shape
    for values, bound in ((weight, math.sqrt(6 / (fan_in + n_out))), (bias, math.sqrt(3 / n_out))):
        assert values.abs().max().item() <= bound
        assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)
    default = SketchRNN(make_config("paper")).out.bias.detach()
    assert default.std().item() < 0.5 * bias.std().item()  # nn.Linear's: 1 / sqrt(fan_in) at most


# ---------------------------------------------------------------------------------------------
# The log-sigma clamp, and how often it binds


def test_the_clamp_counts_every_value_it_changes_at_real_points():
    raw = torch.zeros(1, 3, 6 * 2 + 3)
    raw[0, :, 3 + 3 * 2] = torch.tensor([-8.0, -6.0, 9.0])  # sigma_x of component 0, per step
    raw[0, :, 3 + 4 * 2 + 1] = torch.tensor([-25.0, 0.0, 0.0])  # sigma_y of component 1
    params = split_outputs(raw, Config(num_mixture=2))
    assert params["log_sigma_clamped"].tolist() == [[2, 0, 1]]
    assert params["log_sigma_x"][0, :, 0].tolist() == [-7.0, -6.0, 7.0]
    guard = split_outputs(raw, make_config(faithful=True, num_mixture=2))
    assert guard["log_sigma_clamped"].tolist() == [[1, 0, 0]] and guard["log_sigma_x"][0, :, 0].tolist() == [-8, -6, 9]


def test_training_and_validation_log_how_often_the_clamp_binds(fixture_data_dir, tmp_path):
    import csv

    data = load_sketch_data(["circle"], fixture_data_dir)
    shares = {}
    for limit in (7.0, 20.0):
        config = make_config("cpu", categories=("circle",), log_sigma_limit=limit, lr=1e-6, min_lr=0.0, eval_every=2,
                             **TINY)
        run = Run(config, data, tmp_path / str(limit), "cpu")
        with torch.no_grad():
            run.model.out.bias[3 + 3 * 3:3 + 5 * 3] = -10.0  # every log-sigma about -10
            run.model.out.weight[3 + 3 * 3:3 + 5 * 3] *= 0.01
        run.train(2)
        with open(tmp_path / str(limit) / "metrics.csv") as f:
            row = next(csv.DictReader(f))
        shares[limit] = (float(row["train_clamped"]), float(row["valid_clamped"]))
        assert evaluate(run.model, data.splits["test"], data.n_max, "cpu")["clamped"] == shares[limit][1]
    assert shares == {7.0: (1.0, 1.0), 20.0: (0.0, 0.0)}


# ---------------------------------------------------------------------------------------------
# Stroke conversions: where this project departs from the reference's utils.py, and why


def test_an_end_at_the_first_row_is_an_empty_drawing():
    """The reference's to_normal_strokes reads an end at row 0 as no end at all (`if l == 0: l =
    len(big_stroke)`) and returns every row, padding included; an empty drawing is what it means."""
    rows = np.array([[0, 0, 0, 0, 1], [3, 4, 1, 0, 0], [1, 1, 0, 1, 0]], dtype=np.float32)
    assert stroke5_to_stroke3(rows).shape == (0, 3)


def test_a_drawing_cut_at_the_length_limit_lifts_its_pen_on_the_last_point():
    """The reference keeps the last row's p2 (0 here); every drawing of the data lifts the pen on
    its last point, and so do this project's, which draws the same lines either way."""
    rows = np.array([[1, 2, 0, 1, 0], [3, 4, 1, 0, 0], [5, 6, 1, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(stroke5_to_stroke3(rows), [[1, 2, 1], [3, 4, 0], [5, 6, 1]])
    # Elsewhere it is the reference's rule: cut before the first end row, p2 as the pen bit.
    rows = np.array([[1, 2, 1, 0, 0], [3, 4, 0, 1, 0], [0, 0, 0, 0, 1], [7, 7, 0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(stroke5_to_stroke3(rows), [[1, 2, 0], [3, 4, 1]])


def test_the_first_offset_is_drawn_from_the_implicit_first_point():
    """The official files hold no absolute start: a drawing's first row is the offset from its
    first point (at 0, 0) to its second. The reference's strokes_to_lines starts the first line at
    the end of that offset ([[1, 0], [1, 1]], [[3, 1], [3, 3]] here), leaving its first segment out;
    this project's lines start at the first point."""
    drawing = np.array([[1, 0, 0], [0, 1, 1], [2, 0, 0], [0, 2, 1]])
    lines = stroke3_to_lines(drawing)
    assert [line.tolist() for line in lines] == [[[0, 0], [1, 0], [1, 1]], [[3, 1], [3, 3]]]


def test_lines_become_offsets_from_their_first_point():
    """The reference's lines_to_strokes keeps the absolute start as the first row ([10, 10, 0]
    before the rows below); the official files, and this project, drop it."""
    lines = [[[10, 10], [11, 10]], [[12, 12], [12, 13]]]
    np.testing.assert_array_equal(lines_to_stroke3(lines), [[1, 0, 1], [1, 2, 0], [0, 1, 1]])
