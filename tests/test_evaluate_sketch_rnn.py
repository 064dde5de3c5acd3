import json
import re
import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generator.checkpoint import load_checkpoint, load_model
from generator.data import load_npz, load_sketch_data
from generator.train import evaluate


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tests.conftest import FIXTURE_DATA_DIR

    out = tmp_path_factory.mktemp("run")
    call_command("train_sketch_rnn", "--categories", "circle,square", "--steps", "4", "--eval-every", "4",
                 "--out", str(out), "--data-dir", str(FIXTURE_DATA_DIR), "--cell", "lstm")
    return out / "best.pt"


def test_prints_one_json_object_last(checkpoint, fixture_data_dir, capsys):
    call_command("evaluate_sketch_rnn", "--checkpoint", str(checkpoint), "--data-dir", str(fixture_data_dir),
                 "--per-category")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 24 and result["split"] == "test" and result["step"] == 4
    assert result["loss"] == pytest.approx(result["L_R"] + 0.5 * max(result["L_KL"], 0.2))
    assert set(result["per_category"]) == {"circle", "square"}
    assert sum(r["n"] for r in result["per_category"].values()) == 24


def test_a_category_without_drawings_in_the_split_has_no_per_category_losses(checkpoint, fixture_data_dir, tmp_path,
                                                                            capsys):
    import numpy as np

    (tmp_path / "circle.npz").write_bytes((fixture_data_dir / "circle.npz").read_bytes())
    with np.load(fixture_data_dir / "square.npz", allow_pickle=True, encoding="latin1") as square:
        splits = {name: square[name] for name in ("train", "valid")}
    too_long = np.empty(1, dtype=object)
    too_long[0] = np.tile(np.array([[3, 1, 0]], dtype=np.int16), (300, 1))  # over max_seq_len: filtered out
    too_long[0][-1, 2] = 1
    np.savez_compressed(tmp_path / "square.npz", test=too_long, **splits)
    call_command("evaluate_sketch_rnn", "--checkpoint", str(checkpoint), "--data-dir", str(tmp_path),
                 "--per-category")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 12 and result["per_category"]["square"] is None
    assert result["per_category"]["circle"]["n"] == 12


def paper_losses(model, drawing, n_max):
    """(L_R, L_KL) of one drawing from the paper's formulas, in float64 numpy: the network gives
    the mixture's raw outputs, mu and sigma_hat; everything after them is computed here."""
    import numpy as np
    import torch

    # Stroke-5 targets: (dx, dy, p1, p2, p3) per point, then end rows (0, 0, 0, 0, 1) up to N_max.
    targets = np.zeros((n_max, 5))
    n = len(drawing)
    targets[:n, :2] = drawing[:, :2]
    targets[:n, 2], targets[:n, 3] = 1 - drawing[:, 2], drawing[:, 2]
    targets[n:, 4] = 1
    inputs = np.concatenate([[[0, 0, 1, 0, 0]], targets[:-1]])
    with torch.no_grad():
        _, mu, sigma_hat = model.encode(torch.tensor(targets[None], dtype=torch.float32), torch.tensor([n]))
        raw, _ = model.decode(torch.tensor(inputs[None], dtype=torch.float32), mu, model.initial_state(mu, 1, "cpu"))
    raw = raw[0].double().numpy()
    m = model.config.num_mixture
    pen_logits, pi_logits = raw[:, :3], raw[:, 3:3 + m]
    mu_x, mu_y, log_sx, log_sy, rho_raw = (raw[:, 3 + k * m:3 + (k + 1) * m] for k in range(1, 6))
    sx, sy, rho = np.exp(log_sx), np.exp(log_sy), np.tanh(rho_raw)
    pi = np.exp(pi_logits) / np.exp(pi_logits).sum(axis=1, keepdims=True)
    zx, zy = (targets[:, :1] - mu_x) / sx, (targets[:, 1:2] - mu_y) / sy
    normal = (np.exp(-(zx**2 + zy**2 - 2 * rho * zx * zy) / (2 * (1 - rho**2)))
              / (2 * np.pi * sx * sy * np.sqrt(1 - rho**2)))
    l_s = -np.log((pi * normal).sum(axis=1))[:n].sum()  # the real points only
    pen = np.exp(pen_logits) / np.exp(pen_logits).sum(axis=1, keepdims=True)
    l_p = -(targets[:, 2:] * np.log(pen)).sum()  # every one of the N_max steps
    mu, sigma_hat = mu.double().numpy(), sigma_hat.double().numpy()
    return (l_s + l_p) / n_max, -0.5 * np.mean(1 + sigma_hat - mu**2 - np.exp(sigma_hat))


def test_matches_the_paper_definition_computed_by_hand(checkpoint, fixture_data_dir):
    import numpy as np

    model, payload = load_model(checkpoint)
    drawings = load_sketch_data(["circle", "square"], fixture_data_dir, factor=payload["scale_factor"]).splits["valid"]
    by_hand = np.array([paper_losses(model, d, payload["n_max"]) for d in drawings])
    assert evaluate(model, drawings, payload["n_max"], "cpu")["L_KL"] == pytest.approx(by_hand[:, 1].mean(), rel=1e-5)
    # With sigma of z about exp(-20), z is mu whatever evaluate's random numbers, as it is by hand.
    model.to_sigma_hat.bias.data.fill_(-40.0)
    by_hand = np.array([paper_losses(model, d, payload["n_max"]) for d in drawings])
    assert evaluate(model, drawings, payload["n_max"], "cpu")["L_R"] == pytest.approx(by_hand[:, 0].mean(), rel=1e-5)


def test_a_model_trained_on_simplified_drawings_is_evaluated_on_simplified_drawings(fixture_data_dir, tmp_path,
                                                                                   capsys):
    call_command("train_sketch_rnn", "--categories", "circle", "--steps", "2", "--eval-every", "2", "--out",
                 str(tmp_path), "--data-dir", str(fixture_data_dir), "--cell", "lstm", "--set", "simplify_epsilon=2")
    model, payload = load_model(tmp_path / "best.pt")
    simplified = load_sketch_data(["circle"], fixture_data_dir, factor=payload["scale_factor"], simplify_epsilon=2.0)
    assert model.config.simplify_epsilon == 2.0 and payload["n_max"] == simplified.n_max
    call_command("evaluate_sketch_rnn", "--checkpoint", str(tmp_path / "best.pt"), "--data-dir", str(fixture_data_dir))
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = evaluate(model, simplified.splits["test"], payload["n_max"], "cpu")
    assert (result["L_R"], result["L_KL"]) == pytest.approx((expected["L_R"], expected["L_KL"]))


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(CommandError, match="bad.pt: not a readable checkpoint"):
        call_command("evaluate_sketch_rnn", "--checkpoint", str(tmp_path / "bad.pt"))


# For each committed model: its category, the size of that category's test split, the test losses
# that README.md and the model cards state, and the variable that names the folder of its data.
COMMITTED_MODELS = {
    "fixtures/checkpoints/pig.pt": ("pig", 250, 0.003, 0.218, "QUICKDRAW_DATA_DIR"),
    "fixtures/checkpoints/face.pt": ("face", 250, 0.069, 0.205, "QUICKDRAW_DATA_DIR"),
    "fixtures/models/alarm_clock.pt": ("alarm_clock", 250, 0.128, 0.213, "QUICKDRAW_DATA_DIR"),
    "fixtures/models/radio.pt": ("radio", 250, 0.014, 0.203, "QUICKDRAW_DATA_DIR"),
    "fixtures/models/pig-z128.pt": ("pig", 250, -0.050, 0.267, "QUICKDRAW_DATA_DIR"),
    "fixtures/models/aaron_sheep.pt": ("aaron_sheep", 300, 0.301, 0.398, "AARON_SHEEP_DATA_DIR"),  # simplified drawings
}


@pytest.mark.parametrize("path", COMMITTED_MODELS)
def test_committed_models_have_the_test_losses_their_model_cards_state(path, capsys):
    from tests.conftest import ROOT

    category, n_test, l_r, l_kl, data_variable = COMMITTED_MODELS[path]
    # The first folder of the variable's search path that holds the category's file.
    data_dir = next((folder for folder in os.environ.get(data_variable, "").split(os.pathsep)
                     if folder and (Path(folder) / f"{category}.npz").exists()), None)
    if not data_dir:
        pytest.skip(f"needs {category}.npz in a folder that {data_variable} names")
    if len(load_npz(Path(data_dir) / f"{category}.npz")["test"]) != n_test:
        pytest.skip(f"the model card's losses are for a test split of {n_test} drawings (see the card's data)")
    call_command("evaluate_sketch_rnn", "--checkpoint", str(ROOT / path), "--data-dir", str(data_dir))
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["categories"] == [category] and result["n"] == n_test
    # Evaluation draws z with a fixed seed, so the figures repeat to the printed digits (the slack is
    # half a printed unit, plus a little for another CPU's float rounding).
    assert result["L_R"] == pytest.approx(l_r, abs=6e-4) and result["L_KL"] == pytest.approx(l_kl, abs=6e-4)



# The ten-category study's models (fixtures/ten/MODEL_CARD.md): each category's test drawings over
# every folder of the search path the model was trained from, and the card's pooled test losses.
TEN_MODELS = {"pig": (333, -0.014, 0.210), "face": (333, 0.045, 0.208), "alarm_clock": (333, 0.056, 0.210),
              "radio": (253, -0.058, 0.205), "airplane": (83, 0.307, 0.223), "apple": (84, 0.238, 0.281),
              "butterfly": (82, 0.193, 0.204), "cactus": (83, 0.299, 0.224), "crab": (83, 0.393, 0.223),
              "duck": (83, 0.454, 0.216)}


@pytest.mark.parametrize("category", TEN_MODELS)
def test_the_ten_category_models_have_the_test_losses_their_model_card_states(category, capsys):
    from tests.conftest import ROOT

    n_test, l_r, l_kl = TEN_MODELS[category]
    path = ROOT / "fixtures" / "ten" / f"{category}.pt"
    trained_on = sorted(entry["file"] for entry in load_checkpoint(path)["data_files"])
    search_path = os.environ.get("QUICKDRAW_DATA_DIR", "")
    folders = [Path(folder) for folder in search_path.split(os.pathsep) if folder]
    # Each file is named by its folder's last part and its name (quickdraw_spg/pig.npz).
    found = sorted(f"{folder.name}/{category}.npz" for folder in folders if (folder / f"{category}.npz").exists())
    if found != trained_on:
        pytest.skip(f"the model card's losses are for {', '.join(trained_on)} on the search path "
                    f"QUICKDRAW_DATA_DIR (the quickdraw, quickdraw_spg and quickdraw_mini/npz folders, in this order)")
    call_command("evaluate_sketch_rnn", "--checkpoint", str(path), "--data-dir", search_path)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["categories"] == [category] and result["n"] == n_test
    assert result["L_R"] == pytest.approx(l_r, abs=6e-4) and result["L_KL"] == pytest.approx(l_kl, abs=6e-4)


def test_both_protocols_side_by_side_with_n_max(checkpoint, fixture_data_dir, capsys):
    from generator.reference_evaluation import evaluate_reference

    call_command("evaluate_sketch_rnn", "--checkpoint", str(checkpoint), "--data-dir", str(fixture_data_dir),
                 "--batch-size", "10")
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    model, payload = load_model(checkpoint)
    drawings = load_sketch_data(["circle", "square"], fixture_data_dir, factor=payload["scale_factor"]).splits["test"]
    assert result["n_max"] == payload["n_max"] == 32
    assert result["L_R"] == pytest.approx(evaluate(model, drawings, 32, "cpu")["L_R"])
    reference = evaluate_reference(model, drawings, 32, "cpu", batch_size=10)
    assert result["reference"] == pytest.approx(reference) and result["reference"]["n"] == 20
    table = "\n".join(out[:-1])
    assert "N_max 32" in table and re.search(r"drawings +all 24 +20 \(whole batches, shortest first\)", table)
    assert re.search(rf"L_R +{result['L_R']:.4f} +{reference['L_R']:.4f}", table)


def test_the_reference_protocol_needs_a_whole_batch(checkpoint, fixture_data_dir, capsys):
    call_command("evaluate_sketch_rnn", "--checkpoint", str(checkpoint), "--data-dir", str(fixture_data_dir))
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["reference"] is None
    assert "evaluates whole batches of 100 drawings, more than the split's 24: give --batch-size" in out
    with pytest.raises(CommandError, match="whole batches of 100 drawings, and the split has 24"):
        call_command("evaluate_sketch_rnn", "--checkpoint", str(checkpoint), "--data-dir", str(fixture_data_dir),
                     "--protocol", "reference")
