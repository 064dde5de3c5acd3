"""Data-parallel training in a process group: two gloo ranks that the tests spawn themselves (on
127.0.0.1, a free port) train as one process does on the whole batch, rank 0 alone writes the run's
files, a resumed group goes on exactly, and a rank that dies stops the others. The NCCL path runs
where there are two GPUs."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from generator import distributed
from generator.checkpoint import load_checkpoint
from generator.data import load_sketch_data
from generator.model import Config, SketchRNN
from generator.train import Run, evaluate
from tests.conftest import FIXTURE_DATA_DIR, ROOT

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=20, eval_every=3)
CATEGORIES = ("circle", "square")
# No dropout, no augmentation, and z's sigma exp(-150), 0 in float32 (below), so that the ranks' own
# random numbers make no difference and two ranks must compute what one process computes.
DETERMINISTIC = dict(recurrent_dropout=0.0, augment_stroke_prob=0.0, random_scale=0.0)
SCENARIOS = [dict(cell=cell, conditional=conditional, kl_tolerance=kl_tolerance)
             for cell in ("lstm", "layer_norm")
             for conditional, kl_tolerance in ((True, 0.2), (True, 1000.0), (False, 0.2))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_group(work, out, world_size=2, backend="gloo"):
    """Run work(rank, out) in each rank of a group spawned for it; returns rank 0's result."""
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(rank_main, args=(world_size, free_port(), backend, work, out), nprocs=world_size)
    return torch.load(out / "rank-0-result.pt", weights_only=False)


def rank_main(rank, world_size, port, backend, work, out):
    torch.set_num_threads(1)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        result = work(rank, out)
        if rank == 0:
            torch.save(result, out / "rank-0-result.pt")
        # Neither rank tears the group down while the other may still be in a collective: gloo
        # then aborts the later one ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def tiny_data():
    return load_sketch_data(list(CATEGORIES), FIXTURE_DATA_DIR)


def deterministic_run(scenario, out, device="cpu"):
    config = Config(categories=CATEGORIES, **DETERMINISTIC, **TINY, **scenario)
    run = Run(config, tiny_data(), out, device, seed=4)
    if config.conditional:
        run.model.to_sigma_hat.bias.data.fill_(-300.0)  # L_KL about 150
    return run


def one_step_and_three(rank, out, device="cpu"):
    """Per scenario: the losses and (clipped) gradients of the first step, and the weights after
    three; and the validation losses of one model, in chunks of 5 drawings (5 chunks: 3 on rank 0)."""
    results = []
    for k, scenario in enumerate(SCENARIOS):
        run = deterministic_run(scenario, out / f"{k}", device)
        losses = run.train_step()
        grads = {name: p.grad.cpu().clone() for name, p in run.model.named_parameters()}
        run.train_step()
        run.train_step()
        results.append((losses, grads, {name: value.cpu() for name, value in run.model.state_dict().items()}))
    torch.manual_seed(0)
    model = SketchRNN(Config(categories=CATEGORIES, **TINY)).to(device)
    return results, evaluate(model, tiny_data().splits["valid"], tiny_data().n_max, device, batch_size=5)


@pytest.fixture(scope="module")
def in_one_and_two(tmp_path_factory):
    """What one_step_and_three computes in one process and in two ranks."""
    out = tmp_path_factory.mktemp("group")
    return one_step_and_three(0, out / "one"), in_group(one_step_and_three, out / "two")


def test_two_ranks_give_the_whole_batchs_loss_and_gradient_and_the_same_weights(in_one_and_two):
    (in_one, _), (in_two, _) = in_one_and_two
    for scenario, (one_losses, one_grads, one_weights), (two_losses, two_grads, two_weights) in zip(SCENARIOS, in_one, in_two):
        # Up to the order in which float32 sums are added up: the ranks' halves, then the halves.
        assert two_losses["l_r"] == pytest.approx(one_losses["l_r"], rel=1e-5), scenario
        assert two_losses["l_kl"] == pytest.approx(one_losses["l_kl"], rel=1e-5, abs=1e-9), scenario
        # Above the floor L_KL pulls on sigma_hat; below it (tolerance 1000) nothing does: the floor
        # applies to the whole batch's L_KL, not to each rank's.
        if scenario["conditional"]:
            pull = one_grads["to_sigma_hat.bias"].abs().max()
            assert pull > 1e-4 if scenario["kl_tolerance"] < 1 else pull == 0
        for name, grad in one_grads.items():
            torch.testing.assert_close(two_grads[name], grad, rtol=1e-4, atol=1e-7, msg=f"{scenario} {name}")
        for name, value in one_weights.items():
            torch.testing.assert_close(two_weights[name], value, rtol=1e-4, atol=1e-6, msg=f"{scenario} {name}")


def test_validation_sharded_over_two_ranks_gives_one_process_numbers(in_one_and_two):
    (_, in_one), (_, in_two) = in_one_and_two
    assert in_two["n"] == in_one["n"] == 24
    # The same z noise drawing by drawing; only the float64 sums are added in another order.
    assert in_two["L_R"] == pytest.approx(in_one["L_R"], rel=1e-12)
    assert in_two["L_KL"] == pytest.approx(in_one["L_KL"], rel=1e-12)


def writes_under(folder, written):
    """An audit hook that records every file or folder opened for writing, made, renamed or removed
    under `folder`: whatever way the code writes, it goes through one of these."""

    def hook(event, args):
        if event == "open" and args[0] is not None:
            mode, flags = args[1], args[2]
            if not ((mode and any(c in mode for c in "wax+")) or (flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))):
                return
        elif event not in ("os.rename", "os.mkdir", "os.remove", "os.rmdir"):
            return
        if str(args[0]).startswith(str(folder)):
            written.append(str(args[0]))

    return hook


def train_and_resume(rank, out):
    """8 steps straight, and 4 + 4 with a resume between: the weights of both, and the paths each
    rank wrote under `out`."""
    written = []
    sys.addaudithook(writes_under(out, written))
    # Augmentation, dropout and z's noise on: each rank draws its own, and the resume must go on with them.
    config = Config(categories=CATEGORIES, cell="layer_norm", ema_decay=0.5, **TINY)
    straight = Run(config, tiny_data(), out / "straight", "cpu", seed=3)
    straight.train(8)
    Run(config, tiny_data(), out / "halves", "cpu", seed=3).train(4)
    resumed = Run(config, tiny_data(), out / "halves", "cpu", seed=3, resume=True)
    assert resumed.step == 4
    resumed.train(8)
    every_rank = [None] * dist.get_world_size()
    dist.all_gather_object(every_rank, written)
    return straight.model.state_dict(), resumed.model.state_dict(), every_rank


def test_rank_0_alone_writes_and_a_resumed_group_goes_on_as_an_uninterrupted_one(tmp_path):
    straight, resumed, written = in_group(train_and_resume, tmp_path)
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)
    assert written[1] == []
    for name in ("straight", "halves", "last.pt", "best.pt", "metrics.csv", "loss.png"):
        assert any(name in path for path in written[0]), name
    assert load_checkpoint(tmp_path / "halves" / "last.pt")["world_size"] == 2
    rows = (tmp_path / "halves" / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["3", "4", "6", "8"]


@pytest.mark.parametrize("cores, batch_size, expected", [(2, 100, 2), (1, 100, 1), (16, 100, 4), (2, 40, 1)])
def test_a_cpu_machine_trains_in_one_process_per_core_with_25_drawings_each_at_least(cores, batch_size, expected):
    assert distributed.processes_for(cores, batch_size) == expected


def run_arguments(out):
    """A tiny run on the fixture files into `out`, checkpointed every 2 steps."""
    return ["--categories", "circle", "--out", str(out), "--data-dir", str(FIXTURE_DATA_DIR), "--cell", "lstm",
            "--eval-every", "2", *[f"--set={k}={v}" for k, v in TINY.items() if k != "eval_every"]]


def start_two_ranks(out):
    """Two training processes of one group, started as torchrun starts them, training for good."""
    port = free_port()
    command = [sys.executable, "manage.py", "train_sketch_rnn", *run_arguments(out), "--steps", "100000",
               "--threads", "2"]
    return [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                                  "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
            for rank in (0, 1)]


def wait_for_a_checkpoint(out, ranks, seconds=120):
    deadline = time.monotonic() + seconds
    while not (out / "last.pt").exists() and time.monotonic() < deadline and ranks[0].poll() is None:
        time.sleep(0.2)


def test_a_killed_rank_stops_the_other_which_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    ranks = start_two_ranks(out)
    try:
        wait_for_a_checkpoint(out, ranks)
        time.sleep(1)  # a few checkpoints more
        ranks[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = ranks[0].communicate(timeout=60)
        stopped_after = time.monotonic() - killed
    finally:
        for process in ranks:
            process.kill()  # never leave a training process behind, whatever happened
    assert ranks[0].returncode not in (0, None)
    assert stopped_after < 30
    assert "training process 0 of 2 stopped at step" in stderr and "the last good checkpoint" in stderr
    saved = load_checkpoint(out / "last.pt")
    assert saved["step"] >= 2 and saved["step"] % 2 == 0
    # The run goes on from it in one process: not exactly as two would have, and it says so.
    result = subprocess.run([sys.executable, "manage.py", "train_sketch_rnn", *run_arguments(out), "--steps", str(saved["step"] + 2),
                             "--resume", "--threads", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "trained in 2 process(es) before" in result.stdout
    assert load_checkpoint(out / "last.pt")["step"] == saved["step"] + 2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="the NCCL path needs two CUDA GPUs")
def test_two_gpus_give_the_whole_batchs_loss_and_gradient(tmp_path):
    in_two = in_group(one_step_and_three_on_own_gpu, tmp_path / "two", backend="nccl")
    in_one = one_step_and_three(0, tmp_path / "one", device="cuda:0")
    for scenario, (one_losses, one_grads, _), (two_losses, two_grads, _) in zip(SCENARIOS, in_one[0], in_two[0]):
        assert two_losses["l_r"] == pytest.approx(one_losses["l_r"], rel=1e-4), scenario
        for name, grad in one_grads.items():
            # The GPU may use TF32 and other summation orders (see test_cuda's tolerances).
            torch.testing.assert_close(two_grads[name], grad, rtol=1e-3, atol=1e-6, msg=f"{scenario} {name}")


def one_step_and_three_on_own_gpu(rank, out):
    torch.cuda.set_device(rank)
    return one_step_and_three(rank, out, device=f"cuda:{rank}")


# A process that, asked to stop, takes a few seconds to finish (the step in progress, a validation
# that may take minutes on a large split, saving last.pt), then exits as train_sketch_rnn does.
STOPS_AFTER_ITS_STEP = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
asked = []
signal.signal(signal.SIGINT, lambda *_: asked.append(True))
(out / f"ready-{os.environ['RANK']}").touch()
while not asked:
    time.sleep(0.05)
time.sleep(3)
(out / f"saved-{os.environ['RANK']}").touch()
sys.exit(130)
"""


def test_the_launcher_waits_for_its_processes_to_finish_their_step_when_stopped(tmp_path):
    script = tmp_path / "stops_after_its_step.py"
    script.write_text(STOPS_AFTER_ITS_STEP)
    # torch's launcher kills processes that have not exited TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds
    # (30 by default) after it passed the signal on; 1 here, so that a launcher that relies on it fails fast.
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import sys; from generator import distributed; sys.exit(distributed.launch(sys.argv[1:], 2))",
         str(script), str(tmp_path)], cwd=ROOT, env={**os.environ, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "1"})
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{rank}").exists() for rank in (0, 1)) and time.monotonic() < deadline:
            time.sleep(0.1)
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 130
    finally:
        launcher.kill()
    assert (tmp_path / "saved-0").exists() and (tmp_path / "saved-1").exists()


def test_a_stop_signalled_twice_to_every_rank_still_saves_after_a_whole_step(tmp_path):
    # As a job's end under SLURM does: it signals every process of the job, and torchrun passes
    # the signal on to its processes again.
    out = tmp_path / "run"
    ranks = start_two_ranks(out)
    try:
        wait_for_a_checkpoint(out, ranks)
        time.sleep(0.5)
        for process in ranks + ranks:
            process.send_signal(signal.SIGTERM)
        stderr = [process.communicate(timeout=60)[1] for process in ranks]
    finally:
        for process in ranks:
            process.kill()  # never leave a training process behind, whatever happened
    assert [process.returncode for process in ranks] == [130, 130], stderr
    step = load_checkpoint(out / "last.pt")["step"]
    assert f"Interrupted: saved step {step} to" in stderr[0]
