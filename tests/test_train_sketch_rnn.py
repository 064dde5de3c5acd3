import csv
import signal
import subprocess
import sys
import time
from unittest.mock import ANY

import pytest
import torch
from django.core.management import CommandError, call_command

from generator.checkpoint import CheckpointError, file_sha256, load_checkpoint
from generator.data import load_sketch_data
from generator.management.commands.train_sketch_rnn import named
from generator.model import Config, make_config
from generator.train import Run, evaluate
from tests.conftest import ROOT

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=20, eval_every=3)


def metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def data(fixture_data_dir):
    return load_sketch_data(["circle", "square"], fixture_data_dir)


@pytest.mark.parametrize("cell, ema_decay, precision", [("lstm", 0.0, "fp32"), ("layer_norm", 0.0, "fp32"),
                                                        ("lstm", 0.5, "fp32"), ("layer_norm", 0.0, "bf16")])
def test_n_steps_straight_equal_half_resume_half(cell, ema_decay, precision, data, tmp_path):
    config = Config(categories=("circle", "square"), cell=cell, ema_decay=ema_decay, precision=precision, **TINY)
    straight = Run(config, data, tmp_path / "straight", "cpu", seed=5)
    straight.train(8)

    first = Run(config, data, tmp_path / "halves", "cpu", seed=5)
    first.train(4)
    second = Run(config, data, tmp_path / "halves", "cpu", seed=5, resume=True)
    assert second.step == 4
    second.train(8)

    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    for name, value in straight.validated_model.state_dict().items():
        torch.testing.assert_close(second.validated_model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    # The same validation numbers at the same steps; the first half also validated at its end.
    valid = lambda rows: {r["step"]: (r["lr"], r["w_kl"], r["valid_l_r"], r["valid_l_kl"]) for r in rows}
    straight_rows, halves_rows = valid(metrics(tmp_path / "straight")), valid(metrics(tmp_path / "halves"))
    assert list(halves_rows) == ["3", "4", "6", "8"]
    assert {step: halves_rows[step] for step in straight_rows} == straight_rows


def test_with_ema_the_moving_average_is_validated_and_kept_as_best(data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", ema_decay=0.75, **{**TINY, "eval_every": 4})
    run = Run(config, data, tmp_path, "cpu")
    expected = None
    for _ in range(4):
        run.train_step()
        weights = {name: value.clone() for name, value in run.model.state_dict().items()}
        # The first step's weights, then average = 0.75 average + 0.25 weights after every step.
        expected = weights if expected is None else {n: 0.75 * expected[n] + 0.25 * weights[n] for n in weights}
    valid = run.validate()
    best = load_checkpoint(tmp_path / "best.pt")
    for name, value in expected.items():
        torch.testing.assert_close(best["model"][name], value, msg=name)
    assert not torch.equal(best["model"]["out.weight"], run.model.state_dict()["out.weight"])
    assert valid["L_R"] == evaluate(run.validated_model, run.valid_drawings, data.n_max, "cpu")["L_R"]


def test_interrupt_saves_the_last_finished_step(data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    run = Run(config, data, tmp_path, "cpu")

    def interrupt_at_five(step, postfix):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.train(10, interrupt_at_five)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 5
    resumed = Run(config, data, tmp_path, "cpu", resume=True)
    resumed.train(10)
    assert resumed.step == 10
    assert [int(r["step"]) for r in metrics(tmp_path)] == [3, 6, 9, 10]


def test_a_stop_requested_mid_step_lets_the_step_finish_and_saves_it(data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    straight = Run(config, data, tmp_path / "straight", "cpu", seed=2)
    straight.train(8)

    run = Run(config, data, tmp_path / "stopped", "cpu", seed=2)
    optimizer_step = run.optimizer.step

    def step_then_signal(*args, **kwargs):
        result = optimizer_step(*args, **kwargs)
        if run.step == 4:  # the signal arrives after the weights changed, before the step is counted
            run.request_stop()
        return result

    run.optimizer.step = step_then_signal
    with pytest.raises(KeyboardInterrupt):
        run.train(8)
    assert run.step == 5 and load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 5
    resumed = Run(config, data, tmp_path / "stopped", "cpu", seed=2, resume=True)
    resumed.train(8)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    # The row at step 6 averages the training losses of steps 4 to 6, across the stop.
    assert metrics(tmp_path / "stopped") == [{**row, "seconds": ANY} for row in metrics(tmp_path / "straight")]


def test_an_interrupt_in_the_middle_of_a_step_leaves_last_pt_as_it_was(data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    run = Run(config, data, tmp_path, "cpu")
    optimizer_step = run.optimizer.step

    def interrupted_at_step_five(*args, **kwargs):
        optimizer_step(*args, **kwargs)
        if run.step == 4:
            raise KeyboardInterrupt  # weights updated, step not yet counted

    run.optimizer.step = interrupted_at_step_five
    with pytest.raises(KeyboardInterrupt):
        run.train(8)
    assert run.saved_step == 3 and load_checkpoint(tmp_path / "last.pt")["step"] == 3


def test_a_non_finite_validation_loss_stops_before_saving(data, tmp_path, monkeypatch):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    run = Run(config, data, tmp_path, "cpu")
    run.train(3)
    good = load_checkpoint(tmp_path / "last.pt")
    monkeypatch.setattr("generator.train.evaluate", lambda *a, **k: {"L_R": float("nan"), "L_KL": 0.2,
                                                                        "loss": float("nan"), "n": 1})
    with pytest.raises(FloatingPointError, match="validation loss became nan at step 6"):
        run.train(6)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3 == run.saved_step
    for name, value in good["model"].items():
        torch.testing.assert_close(load_checkpoint(tmp_path / "last.pt")["model"][name], value, msg=name)


def damage_batcher(payload):
    payload["batcher"]["position"] = 99


@pytest.mark.parametrize("damage", [lambda p: p.pop("batcher"), damage_batcher, lambda p: p.pop("world_size"), lambda p: p.update(seconds=None),
                                    lambda p: p.update(best_loss=None), lambda p: p.update(step="3")])
def test_resume_with_a_damaged_training_state_is_a_clear_error(damage, data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    Run(config, data, tmp_path, "cpu").train(3)
    payload = load_checkpoint(tmp_path / "last.pt")
    damage(payload)
    torch.save(payload, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="lacks part of a training state"):
        Run(config, data, tmp_path, "cpu", resume=True)


def test_resume_drops_metrics_rows_after_the_checkpoint(data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    Run(config, data, tmp_path, "cpu").train(6)
    # A crash after writing metrics but before saving: simulate a stale extra row.
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("9,0,0,0,0,0,0,0,0\n")
    run = Run(config, data, tmp_path, "cpu", resume=True)
    run.train(9)
    assert [int(r["step"]) for r in metrics(tmp_path)] == [3, 6, 9]


@pytest.mark.parametrize("damage", [
    lambda text: text + text.splitlines()[0] + "\n",  # a second header, as a careless `cat a b` leaves
    lambda text: "nonsense\n1\n",  # no step column at all
])
def test_resume_with_a_damaged_metrics_file_is_a_clear_error(damage, data, tmp_path):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    Run(config, data, tmp_path, "cpu").train(3)
    path = tmp_path / "metrics.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(CheckpointError, match="metrics.csv: is not a metrics file"):
        Run(config, data, tmp_path, "cpu", resume=True)


def test_command_trains_on_fixture_and_lowers_the_loss(fixture_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    call_command("train_sketch_rnn", "--categories", "circle,square", "--steps", "60", "--eval-every", "10",
                 "--out", str(out), "--data-dir", str(fixture_data_dir), "--seed", "1", "--cell", "lstm")
    assert "Done: step 60" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"best.pt", "last.pt", "metrics.csv", "loss.png"}
    rows = metrics(out)
    assert [int(r["step"]) for r in rows] == list(range(10, 61, 10))
    assert set(rows[0]) == {"step", "lr", "w_kl", "train_l_r", "train_l_kl", "valid_l_r", "valid_l_kl",
                            "valid_loss", "seconds", "train_clamped", "valid_clamped"}
    assert float(rows[-1]["valid_l_r"]) < float(rows[0]["valid_l_r"]) - 0.3
    best = load_checkpoint(out / "best.pt")
    assert "optimizer" not in best  # weights only: small enough to commit
    assert load_checkpoint(out / "last.pt")["world_size"] == 1  # from Python: one process, whatever the cores
    assert best["config"]["categories"] == ["circle", "square"]
    assert best["valid"]["loss"] == pytest.approx(min(float(r["valid_loss"]) for r in rows), abs=1e-4)

    # Asking for more steps with --resume continues; asking for fewer does nothing.
    call_command("train_sketch_rnn", "--categories", "circle,square", "--steps", "30", "--out", str(out),
                 "--data-dir", str(fixture_data_dir), "--resume")
    assert "already at step 60" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--categories", "unicorn"], "no data for category 'unicorn'"),
    (["--categories", "circle", "--steps", "0"], "--steps: must be at least 1, not 0"),
    (["--categories", "circle", "--steps", "abc"], "--steps: must be a whole number, not 'abc'"),
    (["--categories", " , "], "at least one category"),
    (["--categories", "circle,circle"], "names circle more than once"),
    (["--categories", "../circle"], r"\.\./circle is not a category name"),
    (["--categories", "a/b"], "a/b is not a category name"),
    (["--categories", "circle", "--threads", "0"], "--threads: must be at least 1, not 0"),
    (["--categories", "circle", "--precision", "fp8"], "invalid choice: 'fp8'"),
    (["--categories", "circle", "--set", "precision=fp16"], r"precision='fp16' \(must be one of fp32, bf16\)"),
    (["--categories", "circle", "--seed", "-1"], "--seed must be between 0 and"),
    (["--categories", "circle", "--set", "dropout=0.2"], "cannot set 'dropout=0.2': use KEY=VALUE with KEY one of"),
    (["--categories", "circle", "--set", "recurrent_dropout"], "use KEY=VALUE"),
    (["--categories", "circle", "--set", "enc_size=big"], "enc_size takes an integer"),
    (["--categories", "circle", "--set", "conditional=yes"], "conditional takes true or false"),
    (["--categories", "circle", "--set", "eval_every=0"], r"eval_every=0 \(must be at least 1\)"),
    (["--categories", "circle", "--set", "batch_size=0"], r"batch_size=0 \(must be at least 1\)"),
    (["--categories", "circle", "--set", "recurrent_dropout=1"], r"recurrent_dropout=1.0 \(must be at least 0 and below 1\)"),
    (["--categories", "circle", "--set", "kl_tolerance=inf"], r"kl_tolerance=inf \(must be a finite number\)"),
    (["--categories", "circle", "--set", "lr=nan"], r"lr=nan \(must be a finite number\)"),
    (["--categories", "circle", "--set", "cell=bogus"], r"cell='bogus' \(must be one of layer_norm, lstm\)"),
    (["--categories", "circle", "--set", "lr=0.001", "--set", "min_lr=0.01"], r"min_lr=0.01 \(must be between 0 and lr\)"),
])
def test_bad_input_is_a_clear_error(args, message, fixture_data_dir, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("train_sketch_rnn", *args, "--out", str(tmp_path / "r"), "--data-dir", str(fixture_data_dir))


def test_an_out_that_names_a_file_is_a_clear_error(fixture_data_dir, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(CommandError, match="cannot use .*afile as the run folder"):
        call_command("train_sketch_rnn", "--categories", "circle", "--steps", "1", "--out", str(tmp_path / "afile"),
                     "--data-dir", str(fixture_data_dir))
    assert (tmp_path / "afile").read_text() == "keep me"


def test_bad_flag_values_are_rejected_by_the_parser(tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'huge'"):
        call_command("train_sketch_rnn", "--categories", "circle", "--preset", "huge")


def test_existing_run_needs_resume_and_resume_needs_same_categories(fixture_data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--out", str(out), "--data-dir", str(fixture_data_dir), "--cell", "lstm", "--eval-every", "2"]
    call_command("train_sketch_rnn", "--categories", "circle", "--steps", "2", *common)
    with pytest.raises(CommandError, match="already holds a run"):
        call_command("train_sketch_rnn", "--categories", "circle", "--steps", "4", *common)
    with pytest.raises(CommandError, match="was trained on circle, not square"):
        call_command("train_sketch_rnn", "--categories", "square", "--steps", "4", "--resume", *common)
    with pytest.raises(CommandError, match=r"other settings: recurrent_dropout=0.5 \(saved: 0.1\)"):
        call_command("train_sketch_rnn", "--categories", "circle", "--steps", "4", "--resume",
                     "--set", "recurrent_dropout=0.5", *common)
    # Flags other than --set are checked too; a flag left out keeps the saved setting.
    where = ["--categories", "circle", "--steps", "4", "--resume", "--out", str(out), "--data-dir", str(fixture_data_dir)]
    for flags, message in ((["--cell", "layer_norm"], "cell=layer_norm \\(saved: lstm\\)"),
                           (["--preset", "paper"], "enc_size=256 \\(saved: 128\\)"),
                           (["--unconditional"], "conditional=False \\(saved: True\\)"),
                           (["--eval-every", "3"], "eval_every=3 \\(saved: 2\\)"),
                           (["--seed", "7"], "seed=7 \\(saved: 0\\)"),
                           (["--precision", "bf16"], "precision=bf16 \\(saved: fp32\\)")):
        with pytest.raises(CommandError, match=message):
            call_command("train_sketch_rnn", *where, *flags)
    call_command("train_sketch_rnn", *where, "--preset", "cpu")
    assert load_checkpoint(out / "last.pt")["step"] == 4
    with pytest.raises(CommandError, match="cannot resume.*no such checkpoint"):
        call_command("train_sketch_rnn", "--categories", "circle", "--steps", "4", "--resume",
                     "--out", str(tmp_path / "elsewhere"), "--data-dir", str(fixture_data_dir))


@pytest.mark.parametrize("threads", [1, 2], ids=["1 process", "2 processes"])
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_background_run_saves_on_sigint_and_sigterm(signal_number, threads, fixture_data_dir, tmp_path):
    # Started the way `nohup ... &` starts it: with SIGINT ignored, which Python would inherit. With
    # two cores the command starts a group of two processes and passes the signal on to both.
    out = tmp_path / "run"
    command = [sys.executable, "manage.py", "train_sketch_rnn", "--categories", "circle", "--steps", "100000",
               "--eval-every", "100000", "--out", str(out), "--data-dir", str(fixture_data_dir), "--threads", str(threads)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    banner = process.stdout.readline()
    assert banner.startswith("Training circle") and ("on 2 processes" in banner) == (threads == 2)
    time.sleep(2)  # a few steps
    process.send_signal(signal_number)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # never leave a training process behind, whatever happened
    assert process.returncode == 130
    step = load_checkpoint(out / "last.pt")["step"]
    assert step > 0 and f"Interrupted: saved step {step} to {out / 'last.pt'}" in stderr
    assert stderr.count("Interrupted") == 1  # rank 0 alone saves and says so


def test_set_overrides_hyper_parameters_and_they_are_saved(fixture_data_dir, tmp_path):
    out = tmp_path / "run"
    call_command("train_sketch_rnn", "--categories", "circle", "--steps", "2", "--eval-every", "2", "--out", str(out),
                 "--data-dir", str(fixture_data_dir), "--set", "recurrent_dropout=0.3", "--set", "enc_size=32",
                 "--set", "cell=lstm", "--set", "augment_stroke_prob=0.2")
    config = Config.from_dict(load_checkpoint(out / "best.pt")["config"])
    assert (config.recurrent_dropout, config.enc_size, config.cell, config.augment_stroke_prob) == (0.3, 32, "lstm", 0.2)
    assert config == make_config("cpu", categories=("circle",), eval_every=2, recurrent_dropout=0.3, enc_size=32,
                                 cell="lstm", augment_stroke_prob=0.2)  # the rest is the cpu preset's


def test_init_from_starts_a_new_run_from_another_runs_weights(fixture_data_dir, data, tmp_path, capsys):
    config = Config(categories=("circle", "square"), cell="lstm", **TINY)
    Run(config, data, tmp_path / "both", "cpu", seed=1).train(3)
    source = tmp_path / "both" / "best.pt"

    square = load_sketch_data(["square"], fixture_data_dir)
    fine = Run(Config(categories=("square",), cell="lstm", **TINY), square, tmp_path / "square", "cpu", init_from=source)
    fine_rng = torch.get_rng_state()
    fresh = Run(Config(categories=("square",), cell="lstm", **TINY), square, tmp_path / "fresh", "cpu")
    assert torch.equal(fine_rng, torch.get_rng_state())  # loading leaves the seed's random stream as it was
    for name, value in load_checkpoint(source)["model"].items():
        torch.testing.assert_close(fine.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert not torch.equal(fresh.model.out.weight, fine.model.out.weight)
    assert fine.step == 0 and not fine.optimizer.state  # a fresh step count, optimiser and schedules

    out = tmp_path / "cmd"
    common = ["--categories", "square", "--out", str(out), "--data-dir", str(fixture_data_dir), "--cell", "lstm",
              "--eval-every", "2", *[f"--set={k}={v}" for k, v in TINY.items() if k != "eval_every"]]
    call_command("train_sketch_rnn", *common, "--steps", "2", "--init-from", str(source))
    assert "from the weights of best.pt (circle,square, step 3)" in capsys.readouterr().out
    provenance = load_checkpoint(out / "best.pt")["init_from"]
    assert provenance["sha256"] == file_sha256(source) and provenance["categories"] == ["circle", "square"]
    # Resuming keeps where the weights came from.
    call_command("train_sketch_rnn", *common, "--steps", "4", "--resume")
    assert load_checkpoint(out / "last.pt")["init_from"] == provenance


def test_init_from_needs_the_same_model_shape_and_a_new_run(fixture_data_dir, tmp_path):
    source = tmp_path / "small"
    call_command("train_sketch_rnn", "--categories", "circle", "--steps", "1", "--out", str(source),
                 "--data-dir", str(fixture_data_dir), "--cell", "lstm", "--set", "dec_size=32")
    common = ["--categories", "square", "--steps", "1", "--data-dir", str(fixture_data_dir), "--cell", "lstm"]
    with pytest.raises(CommandError, match="another shape \\(dec_size 32 there, 256 here\\)"):
        call_command("train_sketch_rnn", *common, "--out", str(tmp_path / "a"), "--init-from", str(source / "best.pt"))
    with pytest.raises(CommandError, match="another shape \\(dec_size 32 there, 256 here; cell lstm there, layer_norm"):
        call_command("train_sketch_rnn", "--categories", "square", "--steps", "1", "--data-dir", str(fixture_data_dir),
                     "--out", str(tmp_path / "b"), "--init-from", str(source / "best.pt"))
    with pytest.raises(CommandError, match="no such checkpoint"):
        call_command("train_sketch_rnn", *common, "--out", str(tmp_path / "c"), "--init-from", str(tmp_path / "nope.pt"))
    with pytest.raises(CommandError, match="argument --init-from: not allowed with argument --resume"):
        call_command("train_sketch_rnn", *common, "--out", str(source), "--resume", "--init-from", str(source / "best.pt"))


def test_a_committed_format_1_checkpoint_starts_a_run_but_a_format_1_last_pt_does_not_resume(fixture_data_dir, tmp_path):
    committed = ROOT / "fixtures" / "checkpoints" / "pig.pt"  # format 1, the cpu preset's shape
    assert load_checkpoint(committed)["format"] == "sketchlab.sketch_rnn/1"
    out = tmp_path / "run"
    common = ["--categories", "circle", "--out", str(out), "--data-dir", str(fixture_data_dir), "--eval-every", "1"]
    call_command("train_sketch_rnn", *common, "--steps", "1", "--init-from", str(committed))
    assert load_checkpoint(out / "last.pt")["init_from"]["sha256"] == file_sha256(committed)
    payload = load_checkpoint(out / "last.pt")
    torch.save({**payload, "format": "sketchlab.sketch_rnn/1"}, out / "last.pt")
    with pytest.raises(CommandError, match="cannot resume: .*last.pt: is a checkpoint of format sketchlab.sketch_rnn/1"
                                           ".*start a new run from its weights with --init-from"):
        call_command("train_sketch_rnn", *common, "--steps", "2", "--resume")


def test_a_prior_of_many_categories_is_named_by_its_count_not_listed():
    assert named(["circle", "square"]) == "circle,square"
    many = [f"category{i}" for i in range(345)]
    assert named(many) == "345 categories: category0 ... category344"
