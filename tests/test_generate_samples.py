"""generate_samples and ratings/stimuli.py: reproducible, balanced stimuli from real drawings and tiny trained checkpoints."""

import hashlib
import io
import shutil

import pytest
import torch
from django.core.management import CommandError, call_command
from PIL import Image

from generator.data import load_npz
from generator.model import Config
from generator.render import sketch_png
from generator.sample import sample
from ratings.management.commands.generate_samples import degenerate_warnings
from ratings.models import Condition, Stimulus, StimulusImage, Study
from ratings.stimuli import Summary

from .test_render import png_chunks

TINY = dict(enc_size=16, dec_size=24, z_size=8, num_mixture=3, batch_size=20, eval_every=2, max_seq_len=40)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny models trained for two steps on the fixture data: one per category, one for both."""
    from generator.data import load_sketch_data
    from generator.train import Run
    from tests.conftest import FIXTURE_DATA_DIR

    folder = tmp_path_factory.mktemp("checkpoints")
    for categories in (["circle"], ["square"], ["circle", "square"]):
        data = load_sketch_data(categories, FIXTURE_DATA_DIR, max_len=40)
        run_dir = folder / "-".join(categories)
        Run(Config(categories=tuple(categories), cell="lstm", **TINY), data, run_dir, "cpu").train(2)
        shutil.copy(run_dir / "best.pt", folder / f"{'-'.join(categories)}.pt")
    return folder


@pytest.fixture
def demo(checkpoints, settings, tmp_path):
    """The two single-category checkpoints as the demo checkpoints."""
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    for name in ("circle.pt", "square.pt"):
        shutil.copy(checkpoints / name, demo_dir / name)
    settings.DEMO_CHECKPOINT_DIR = demo_dir
    return demo_dir


def generate(*args):
    call_command("generate_samples", *args)


def stimulus_set(study):
    """What a study holds, by provenance, as comparable tuples."""
    return sorted(study.stimuli.values_list("source", "category", "dataset_index", "sample_index", "condition__temperature"),
                  key=str)


@pytest.mark.django_db
def test_defaults_make_a_balanced_study_from_the_test_split(demo, fixture_data_dir, settings, capsys):
    generate("--study", "demo", "--real", "8", "--generated", "8")
    study = Study.objects.get(slug="demo")
    out = capsys.readouterr().out
    assert "Study 'demo' (created): added 16 stimuli in " in out
    assert f"Contact sheet: {settings.REPORTS_DIR / 'demo' / 'real.png'} (real sketches)" in out
    assert "(generated: circle.pt " in out and "t=0.5 unconditional)" in out
    real = study.stimuli.filter(source="real")
    generated = study.stimuli.filter(source="generated")
    assert {c: real.filter(category=c).count() for c in ("circle", "square")} == {"circle": 4, "square": 4}
    assert {c: generated.filter(category=c).count() for c in ("circle", "square")} == {"circle": 4, "square": 4}
    assert study.stimuli.filter(source="attention").count() == study.attention_checks
    for stimulus in real:
        assert stimulus.dataset_split == "test"
        test = load_npz(fixture_data_dir / f"{stimulus.category}.npz")["test"]
        # The image is exactly the test drawing at the recorded index, through the one renderer.
        assert stimulus.png == sketch_png(test[stimulus.dataset_index])
    conditions = Condition.objects.filter(study=study)
    assert len(conditions) == 2  # one checkpoint per category: one condition each
    for condition in conditions:
        assert condition.temperature == 0.5 and condition.mode == "unconditional"
    assert sorted((c.checkpoint_name, c.checkpoint_sha256) for c in conditions) == [
        (name, hashlib.sha256((demo / name).read_bytes()).hexdigest()) for name in ("circle.pt", "square.pt")]
    assert set(generated.values_list("condition", flat=True)) == set(study.conditions.values_list("pk", flat=True))
    # Contact sheets live in the reports folder, named after what they show.
    sheets = sorted(path.name for path in (settings.REPORTS_DIR / "demo").glob("*.png"))
    assert sheets == sorted(["real.png"] + [f"generated-{c.checkpoint_name}-{c.checkpoint_sha256[:8]}-t-0.5-unconditional.png"
                                            for c in conditions])


@pytest.mark.django_db
def test_images_of_both_sources_look_alike_on_the_outside(demo):
    generate("--study", "alike", "--real", "4", "--generated", "4")
    for stimulus in Study.objects.get(slug="alike").stimuli.all():
        data = stimulus.png
        image = Image.open(io.BytesIO(data))
        assert (image.size, image.mode) == ((256, 256), "L")
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]


@pytest.mark.django_db
def test_same_seed_same_stimuli_and_a_second_run_adds_nothing(demo, capsys):
    for slug in ("one", "two"):
        generate("--study", slug, "--real", "4", "--generated", "4", "--seed", "7")
    one, two = Study.objects.get(slug="one"), Study.objects.get(slug="two")
    assert stimulus_set(one) == stimulus_set(two)
    bytes_of = lambda study: sorted(s.png for s in study.stimuli.exclude(source="attention"))
    assert bytes_of(one) == bytes_of(two)

    before = stimulus_set(one)
    images_before = StimulusImage.objects.count()
    generate("--study", "one", "--real", "4", "--generated", "4", "--seed", "7")
    assert "added 0 stimuli" in capsys.readouterr().out
    assert stimulus_set(one) == before and StimulusImage.objects.count() == images_before


@pytest.mark.django_db
@pytest.mark.parametrize("reject", [[], ["--reject-degenerate"]], ids=["keeping", "rejecting"])
def test_a_second_run_samples_nothing_and_counts_as_the_first(demo, capsys, monkeypatch, reject):
    from ratings import stimuli

    def degenerate_lines(out):
        return [line for line in out.splitlines() if line.startswith("  degenerate samples")]

    generate("--study", "again", "--real", "0", "--generated", "6", *reject)
    first = degenerate_lines(capsys.readouterr().out)
    chunks = []
    monkeypatch.setattr(stimuli, "sample_chunk", lambda *args: chunks.append(args))
    generate("--study", "again", "--real", "0", "--generated", "6", *reject)
    assert chunks == [] and degenerate_lines(capsys.readouterr().out) == first
    # Asking for more than is stored samples again.
    monkeypatch.undo()
    generate("--study", "again", "--real", "0", "--generated", "8", *reject)
    assert Study.objects.get(slug="again").stimuli.filter(source="generated").count() == 8


@pytest.mark.django_db
def test_another_seed_picks_other_real_drawings(demo):
    generate("--study", "a", "--real", "4", "--generated", "0", "--seed", "1")
    generate("--study", "b", "--real", "4", "--generated", "0", "--seed", "2")
    pick = lambda slug: set(Stimulus.objects.filter(study__slug=slug, source="real").values_list("category", "dataset_index"))
    assert pick("a") != pick("b")


@pytest.mark.django_db
def test_a_run_killed_midway_is_completed_by_running_it_again(demo, monkeypatch):
    generate("--study", "whole", "--real", "6", "--generated", "6")
    expected = stimulus_set(Study.objects.get(slug="whole"))

    real_create = StimulusImage.objects.create
    calls = {"n": 0}

    def create_then_die(**fields):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # killed after the 5th stimulus row was written, before its image
        return real_create(**fields)

    monkeypatch.setattr(StimulusImage.objects, "create", create_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate("--study", "cut", "--real", "6", "--generated", "6")
    monkeypatch.undo()
    study = Study.objects.get(slug="cut")
    assert study.stimuli.count() == 4  # the row whose image failed went with it
    assert StimulusImage.objects.filter(stimulus__study=study).count() == 4

    generate("--study", "cut", "--real", "6", "--generated", "6")
    assert stimulus_set(study) == expected
    assert not study.stimuli.filter(image__isnull=True).exists()


@pytest.mark.django_db
def test_another_temperature_adds_a_condition_to_the_same_study(demo, capsys):
    generate("--study", "temps", "--real", "4", "--generated", "4", "--temperature", "0.2")
    assert "Participants get real and generated" not in capsys.readouterr().out  # half and half
    generate("--study", "temps", "--real", "4", "--generated", "4", "--temperature", "0.8")
    study = Study.objects.get(slug="temps")
    assert sorted(study.conditions.values_list("temperature", flat=True).distinct()) == [0.2, 0.8]
    assert study.stimuli.filter(source="real").count() == 4
    assert study.stimuli.filter(source="generated").count() == 8
    assert ("Participants get real and generated sketches as 4 to 8, in proportion to the study's stimuli; for "
            "half and half, make as many real as generated (--real 8 in all).") in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("temperature", ["1e-40", "5e-324"])
def test_a_tiny_temperature_samples_greedily(demo, temperature):
    generate("--study", "tiny", "--real", "0", "--generated", "2", "--temperature", temperature)
    study = Study.objects.get(slug="tiny")
    assert study.stimuli.filter(source="generated").count() == 2
    assert [c.temperature for c in study.conditions.all()] == [float(temperature)] * 2


@pytest.mark.django_db
def test_each_condition_samples_from_latent_codes_of_its_own(demo, monkeypatch):
    """Sample i of two conditions must not start from one code: the two sketches would look alike."""
    from ratings import stimuli

    codes = {}

    def recording_sample(model, z=None, temperature=0.5, **kwargs):
        codes.setdefault(temperature, []).append(z.clone())
        return sample(model, z=z, temperature=temperature, **kwargs)

    monkeypatch.setattr(stimuli, "sample", recording_sample)
    for n, temperature in enumerate(("0.2", "0.8", "0.2")):
        generate("--study", f"codes-{n}", "--real", "0", "--generated", "4", "--temperature", temperature)
    (first, again), (other, _) = codes[0.2][::2], codes[0.8]  # circle's codes (square's come second)
    assert torch.equal(first, again)  # one condition's stream is reproducible
    assert not torch.isclose(first, other).any()


@pytest.mark.django_db
def test_conditional_mode_encodes_test_drawings_not_shown_as_real(checkpoints, fixture_data_dir):
    generate("--study", "cond", "--checkpoint", str(checkpoints / "circle-square.pt"), "--mode", "conditional",
             "--real", "10", "--generated", "10")
    study = Study.objects.get(slug="cond")
    for category in ("circle", "square"):
        shown = set(study.stimuli.filter(source="real", category=category).values_list("dataset_index", flat=True))
        encoded = set(study.stimuli.filter(source="generated", category=category).values_list("dataset_index", flat=True))
        assert len(shown) == 5 and len(encoded) == 5
        assert not shown & encoded
    assert Condition.objects.get(study=study).mode == "conditional"


@pytest.fixture(scope="module")
def simplified_checkpoint(tmp_path_factory):
    """A tiny circle model trained for two steps on drawings simplified with epsilon 2."""
    from generator.data import load_sketch_data
    from generator.train import Run
    from tests.conftest import FIXTURE_DATA_DIR

    folder = tmp_path_factory.mktemp("simplified")
    data = load_sketch_data(["circle"], FIXTURE_DATA_DIR, max_len=40, simplify_epsilon=2.0)
    Run(Config(categories=("circle",), cell="lstm", simplify_epsilon=2.0, **TINY), data, folder, "cpu").train(2)
    return folder / "best.pt"


@pytest.mark.django_db
def test_real_drawings_are_simplified_as_the_models_training_drawings_were(simplified_checkpoint, fixture_data_dir):
    from generator.strokes import simplify_stroke3

    generate("--study", "simple", "--checkpoint", str(simplified_checkpoint), "--mode", "conditional",
             "--real", "4", "--generated", "4")
    test = load_npz(fixture_data_dir / "circle.npz")["test"]
    study = Study.objects.get(slug="simple")
    real = study.stimuli.filter(source="real")
    assert real.count() == 4 and study.stimuli.filter(source="generated").count() == 4
    for stimulus in real:
        drawing = simplify_stroke3(test[stimulus.dataset_index], 2.0)
        assert stimulus.num_points == len(drawing) < len(test[stimulus.dataset_index])
        assert stimulus.png == sketch_png(drawing)


@pytest.mark.django_db
def test_a_study_does_not_mix_real_drawings_simplified_otherwise(demo, simplified_checkpoint):
    generate("--study", "mixed", "--categories", "circle", "--real", "4", "--generated", "0")
    before = stimulus_set(Study.objects.get(slug="mixed"))
    with pytest.raises(CommandError, match="simplified otherwise"):
        generate("--study", "mixed", "--checkpoint", str(simplified_checkpoint), "--real", "4", "--generated", "4")
    assert stimulus_set(Study.objects.get(slug="mixed")) == before


@pytest.mark.django_db
def test_reject_degenerate_counts_and_stores_rejections(demo):
    generate("--study", "strict", "--real", "0", "--generated", "4", "--reject-degenerate")
    study = Study.objects.get(slug="strict")
    condition = study.conditions.first()
    assert condition.reject_degenerate
    assert set(condition.rejected) <= {"circle", "square"}
    for stimulus in study.stimuli.filter(source="generated"):
        assert stimulus.ended and stimulus.num_points > 0
    # The same request without the flag is a separate condition: nothing hidden is reused.
    generate("--study", "strict", "--real", "0", "--generated", "4")
    assert study.conditions.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["--real", "3"], "cannot be split equally over 2 categories"),
    (["--categories", "circle,unicorn"], "no checkpoint was trained on 'unicorn'"),
    (["--temperature", "-1"], "between 0"),
    (["--temperature", "nan"], "between 0"),
    (["--temperature", "inf"], "between 0"),
    (["--seed", "-1"], "--seed must be between 0 and 9223372036854775807"),
    (["--seed", "99999999999999999999999"], "--seed must be between 0 and 9223372036854775807"),
    (["--real", "-2"], "must be 0 or more"),
    (["--real", "400"], "its test split holds 12"),
    (["--checkpoint", "/nonexistent/model.pt"], "no such checkpoint"),
    (["--study", "not a slug"], "is not a slug"),
])
def test_bad_input_writes_nothing(demo, args, message, settings):
    base = {"--study": "bad"}
    argv = [a for k, v in base.items() if k not in args for a in (k, v)] + args
    with pytest.raises(CommandError, match=message):
        generate(*argv)
    assert not Study.objects.exists() and not StimulusImage.objects.exists()


@pytest.mark.django_db
def test_missing_data_file_writes_nothing(demo, tmp_path, settings):
    empty = tmp_path / "nodata"
    empty.mkdir()
    with pytest.raises(CommandError, match="no data for category 'circle'"):
        generate("--study", "x", "--data-dir", str(empty))
    assert not Study.objects.exists()


@pytest.mark.django_db
def test_unconditional_needs_single_category_checkpoints(checkpoints):
    with pytest.raises(CommandError, match="no category; use --mode conditional"):
        generate("--study", "x", "--checkpoint", str(checkpoints / "circle-square.pt"))
    with pytest.raises(CommandError, match="several checkpoints were trained on 'circle'"):
        generate("--study", "x", "--checkpoint", str(checkpoints / "circle.pt"),
                 "--checkpoint", str(checkpoints / "circle-square.pt"), "--mode", "conditional")
    assert not Study.objects.exists()


@pytest.mark.django_db
def test_greedy_sampling_of_a_decoder_only_model_is_refused(tmp_path):
    """With no latent code, greedy samples are all one sketch."""
    from generator.data import load_sketch_data
    from generator.train import Run
    from tests.conftest import FIXTURE_DATA_DIR

    data = load_sketch_data(["circle"], FIXTURE_DATA_DIR, max_len=40)
    Run(Config(categories=("circle",), cell="lstm", conditional=False, **TINY), data, tmp_path / "run", "cpu").train(1)
    decoder_only = str(tmp_path / "run" / "best.pt")
    for temperature in ("0", "1e-9"):  # below 1e-6 sampling is greedy in effect
        with pytest.raises(CommandError, match="every sample is the same sketch"):
            generate("--study", "greedy", "--checkpoint", decoder_only, "--temperature", temperature)
    assert not Study.objects.exists()
    generate("--study", "greedy", "--checkpoint", decoder_only, "--temperature", "0.1", "--real", "2", "--generated", "2")
    assert Study.objects.get(slug="greedy").stimuli.filter(source="generated").count() == 2


@pytest.mark.django_db
def test_the_temperature_rule_is_a_condition_of_its_own_recorded_in_its_provenance(demo, monkeypatch):
    from ratings import stimuli
    from ratings.stats.frame import stimulus_counts

    rules = []

    def recording_sample(model, temperature_rule="paper", **kwargs):
        rules.append(temperature_rule)
        return sample(model, temperature_rule=temperature_rule, **kwargs)

    monkeypatch.setattr(stimuli, "sample", recording_sample)
    generate("--study", "rules", "--real", "0", "--generated", "2")
    generate("--study", "rules", "--real", "0", "--generated", "2", "--temperature-rule", "magenta")
    study = Study.objects.get(slug="rules")
    assert sorted(study.conditions.values_list("temperature_rule", flat=True)) == ["magenta", "magenta", "paper", "paper"]
    assert rules == ["paper", "paper", "magenta", "magenta"]  # one sampling call per category
    magenta = study.conditions.filter(temperature_rule="magenta").first()
    assert "t=0.5 (magenta rule) unconditional" in str(magenta)
    assert "(magenta rule)" not in str(study.conditions.filter(temperature_rule="paper").first())
    labels = set(stimulus_counts(study)["condition"])
    assert any("t=0.5 (magenta rule) unconditional" in label for label in labels)
    # The same draws under another rule are another sketch: the conditions do not share streams.
    paper = study.conditions.get(temperature_rule="paper", checkpoint_name=magenta.checkpoint_name)
    assert stimuli.condition_key(paper) != stimuli.condition_key(magenta)
    # ...while a paper-rule condition keeps the stream it had before there was a rule to choose.
    import zlib

    assert stimuli.condition_key(paper) == zlib.crc32(f"{paper.checkpoint_sha256}|0.5|unconditional|False".encode())


def test_the_conditions_temperature_rules_are_the_generators():
    from generator.sample import TEMPERATURE_RULES

    assert tuple(Condition.TemperatureRule.values) == TEMPERATURE_RULES


def summary_of(counts):
    """A Summary with {(condition, category): (degenerate, sampled, rejected)}."""
    summary = Summary()
    for key, (bad, sampled, rejected) in counts.items():
        summary.degenerate[key], summary.rejected[key] = (bad, sampled), rejected
    return summary


def test_more_than_a_tenth_degenerate_in_a_condition_is_warned_of_with_the_remedies():
    warnings = degenerate_warnings(summary_of({
        ("A t=0.5", "pig"): (5, 50, 0), ("A t=0.5", "face"): (6, 50, 0),  # 11 of 100: warned
        ("B t=0.5", "pig"): (10, 100, 0),  # exactly 10%: not
        ("C t=0.5 rejecting degenerate", "pig"): (30, 130, 30),
    }))
    assert len(warnings) == 2
    assert warnings[0].startswith("WARNING: 11% (11 of 100) of the samples of A t=0.5 are degenerate")
    assert "Train the model longer, or make the stimuli with --reject-degenerate" in warnings[0]
    assert warnings[1].startswith("WARNING: 23% (30 of 130) of the samples of C t=0.5 rejecting degenerate were "
                                  "degenerate")
    assert "they were replaced (--reject-degenerate)" in warnings[1] and "Train the model longer" in warnings[1]


@pytest.mark.django_db
def test_the_warning_is_printed(demo, capsys, monkeypatch):
    from ratings import stimuli

    monkeypatch.setattr(stimuli, "is_degenerate", lambda strokes, ended: True)  # every sample degenerate
    generate("--study", "poor", "--real", "0", "--generated", "2")
    out = capsys.readouterr().out
    assert out.count("WARNING: 100% (1 of 1) of the samples of ") == 2  # one model per category
