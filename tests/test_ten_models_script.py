"""fixtures/ten/train.sh, the command sequence that retrains the study's models: a prior on every
category of the data path, then a fine-tune per category from it, each resumable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from generator.checkpoint import file_sha256

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "fixtures" / "ten" / "train.sh"
TINY = "--threads 1 --set enc_size=8 --set dec_size=8 --set z_size=4 --set num_mixture=2 --set batch_size=20"


def run_script(runs, fixture_data_dir, finetune_steps, longer="", categories="circle square", settings="",
               more=""):
    """`longer`: category:steps pairs, fine-tuned longer than the others; `settings`: category:KEY=VALUE;
    `more`: category:steps pairs, fine-tuned once more from their fine-tune's best.pt."""
    env = {**os.environ, "PYTHON": sys.executable, "RUNS": str(runs), "QUICKDRAW_DATA_DIR": str(fixture_data_dir),
           "CATEGORIES": categories, "PRIOR_STEPS": "2", "FINETUNE_STEPS": str(finetune_steps),
           "LONGER": longer, "SETTINGS": settings, "CONTINUE": more, "EVAL_EVERY": "1", "TRAIN_FLAGS": TINY}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)


def saved(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def evaluate(checkpoint, fixture_data_dir):
    """The last line of evaluate_sketch_rnn on the checkpoint's test split."""
    run = subprocess.run([sys.executable, "manage.py", "evaluate_sketch_rnn", "--checkpoint", str(checkpoint),
                          "--data-dir", str(fixture_data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_trains_a_prior_on_every_category_then_fine_tunes_each_from_it_and_resumes(tmp_path, fixture_data_dir):
    runs = tmp_path / "runs"
    first = run_script(runs, fixture_data_dir, finetune_steps=1, settings="square:recurrent_dropout=0.5",
                       more="square:2")
    assert first.returncode == 0, first.stderr[-2000:]
    prior = saved(runs / "prior" / "best.pt")
    assert prior["config"]["categories"] == ["circle", "square"]
    for category in ("circle", "square"):
        best = saved(runs / category / "best.pt")
        assert best["config"]["categories"] == [category]
        assert best["config"]["ema_decay"] == 0.999
        assert best["config"]["recurrent_dropout"] == {"circle": 0.3, "square": 0.5}[category]
        assert best["init_from"]["file"] == "best.pt" and best["init_from"]["categories"] == ["circle", "square"]
    # square went on from its own fine-tune, with its settings, and that run's model is evaluated.
    assert not (runs / "circle-continued").exists()
    continued = saved(runs / "square-continued" / "last.pt")
    assert continued["step"] == 2
    assert continued["config"]["recurrent_dropout"] == 0.5 and continued["config"]["ema_decay"] == 0.999
    assert continued["init_from"]["file"] == "best.pt"
    assert continued["init_from"]["sha256"] == file_sha256(runs / "square" / "best.pt")
    evaluations = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    assert [e["categories"] for e in evaluations] == [["circle"], ["square"]]
    assert evaluations[1]["L_R"] == evaluate(runs / "square-continued" / "best.pt", fixture_data_dir)["L_R"]
    assert evaluations[1]["L_R"] != evaluate(runs / "square" / "best.pt", fixture_data_dir)["L_R"]

    # Started again with more steps, every run goes on from its last.pt; the longer ones further.
    again = run_script(runs, fixture_data_dir, finetune_steps=3, longer="square:4",
                       settings="square:recurrent_dropout=0.5", more="square:3")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already at step 2" in again.stdout  # the prior
    assert saved(runs / "circle" / "last.pt")["step"] == 3
    assert saved(runs / "square" / "last.pt")["step"] == 4
    assert saved(runs / "square-continued" / "last.pt")["step"] == 3


def test_a_failed_fine_tune_fails_the_script_after_the_others_finish(tmp_path, fixture_data_dir):
    runs = tmp_path / "runs"
    run = run_script(runs, fixture_data_dir, finetune_steps=1, categories="circle no_such_category")
    assert run.returncode == 1
    assert f"The fine-tune of no_such_category did not finish: see {runs / 'no_such_category.log'}" in run.stderr
    assert "no_such_category" in (runs / "no_such_category.log").read_text()
    assert saved(runs / "circle" / "last.pt")["step"] == 1  # started beside it, and finished
    assert "{" not in run.stdout  # not even circle's evaluation: the set is incomplete


def test_runs_at_most_parallel_fine_tunes_at_a_time(tmp_path):
    # A stand-in for python that notes how many fine-tunes run while it is one of them.
    fake = tmp_path / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in *--init-from*) ;; *) exit 0 ;; esac\n'
        'touch "$RUNNING/$$"\n'
        'ls "$RUNNING" | wc -l >> "$COUNTS"\n'
        "sleep 1\n"
        'rm "$RUNNING/$$"\n'
    )
    fake.chmod(0o755)
    (tmp_path / "running").mkdir()
    for parallel, expected in (("1", 1), ("2", 2), ("3", 3)):
        counts = tmp_path / f"counts{parallel}"
        env = {**os.environ, "PYTHON": str(fake), "RUNS": str(tmp_path / "runs"), "PARALLEL": parallel,
               "CATEGORIES": "a b c d e f", "RUNNING": str(tmp_path / "running"), "COUNTS": str(counts)}
        (tmp_path / "runs").mkdir(exist_ok=True)
        run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        seen = [int(line) for line in counts.read_text().split()]
        assert len(seen) == 6 and max(seen) == expected, (parallel, seen)
