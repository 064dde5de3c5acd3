"""A study's stimuli: real test drawings and sketches sampled from trained models, rendered by the
one renderer and stored as Stimulus rows with their provenance.

Every selection is a deterministic function of the seed, so running the same request again finds
every stimulus already there and adds nothing, and a run cut short is completed by running it
again. Real drawings come from a seeded permutation of each category's test split; generated
sketches from a seeded stream of samples per (condition, category), drawn in fixed chunks so that
sample i is the same whatever the requested count (on the same kind of device: a GPU draws other
random numbers than the CPU). Each condition has a stream of its own: with
one stream for all, sample i of two conditions (say two temperatures) would start from the same
latent code and look alike, and a participant shown both would know them for generated.
"""

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import IntegrityError, transaction

from generator.checkpoint import file_sha256, load_model
from generator.data import clamp_and_filter, load_category, normalise
from generator.render import contact_sheet, sketch_png
from generator.sample import encode, is_degenerate, is_greedy, sample

from .models import Condition, Stimulus

SAMPLE_CHUNK = 100  # samples drawn per batched pass; part of what makes sample i reproducible
MAX_ATTEMPTS_PER_SKETCH = 20  # with --reject-degenerate, give up after this many samples per sketch


class StimulusError(Exception):
    """A request for stimuli that cannot be met; nothing has been written."""


def category_seed(seed, category, *extra):
    """A numpy/torch seed for one category's stream, stable across runs and machines."""
    return [seed, zlib.crc32(category.encode()), *extra]


def condition_key(condition):
    """A number for a condition from what defines it (not its database id), stable across runs."""
    text = f"{condition.checkpoint_sha256}|{condition.temperature!r}|{condition.mode}|{condition.reject_degenerate}"
    if condition.temperature_rule != Condition.TemperatureRule.PAPER:
        # Not for the paper's rule: conditions made before there was a choice keep their streams.
        text += f"|{condition.temperature_rule}"
    return zlib.crc32(text.encode())


@dataclass
class Checkpoint:
    path: str
    sha256: str
    model: object
    payload: dict

    @property
    def categories(self):
        return list(self.model.config.categories)


@dataclass
class Summary:
    created: dict = field(default_factory=dict)  # (source, category, condition label) -> count
    degenerate: dict = field(default_factory=dict)  # (condition label, category) -> (degenerate, sampled)
    rejected: dict = field(default_factory=dict)  # (condition label, category) -> count

    def add(self, source, category, condition=""):
        key = (source, category, condition)
        self.created[key] = self.created.get(key, 0) + 1


def load_checkpoints(paths, device):
    """The checkpoints at `paths` (default: the demo checkpoints) on `device`."""
    paths = paths or sorted(str(p) for p in Path(settings.DEMO_CHECKPOINT_DIR).glob("*.pt"))
    if not paths:
        raise StimulusError(f"no --checkpoint given and no demo checkpoints in {settings.DEMO_CHECKPOINT_DIR}")
    checkpoints = []
    for path in paths:
        model, payload = load_model(path, device)
        checkpoints.append(Checkpoint(path=Path(path).name, sha256=file_sha256(path), model=model, payload=payload))
    return checkpoints


def checkpoint_for_each_category(checkpoints, categories, mode, temperature):
    """{category: the one checkpoint that makes its generated sketches in this mode and at this
    temperature}, or a StimulusError that says why there is none."""
    by_category = {}
    for category in categories:
        matching = [c for c in checkpoints if category in c.categories]
        if not matching:
            trained = ", ".join(f"{c.path}: {','.join(c.categories)}" for c in checkpoints)
            raise StimulusError(f"no checkpoint was trained on '{category}' ({trained})")
        if len(matching) > 1:
            raise StimulusError(f"several checkpoints were trained on '{category}' "
                                f"({', '.join(c.path for c in matching)}); pass the one to use with --checkpoint")
        checkpoint = matching[0]
        if mode == Condition.Mode.UNCONDITIONAL and len(checkpoint.categories) > 1:
            raise StimulusError(f"{checkpoint.path} was trained on several categories "
                                f"({','.join(checkpoint.categories)}), so its unconditional samples have no "
                                f"category; use --mode conditional or a single-category checkpoint")
        if mode == Condition.Mode.CONDITIONAL and not checkpoint.model.config.conditional:
            raise StimulusError(f"{checkpoint.path} is a decoder-only model and cannot encode drawings; "
                                f"use --mode unconditional")
        if is_greedy(temperature) and not checkpoint.model.config.conditional:
            # Nothing random is left: no latent code, no sampling. Participants would see one sketch many times.
            raise StimulusError(f"{checkpoint.path} is a decoder-only model: at --temperature {temperature} (greedy) "
                                f"every sample is the same sketch; use a temperature of 1e-6 or more")
        by_category[category] = checkpoint
    return by_category


def real_permutation(category, test_size, seed):
    return np.random.default_rng(category_seed(seed, category)).permutation(test_size)


def write_stimulus(study, drawing, **fields):
    """Render and store a stimulus with its PNG."""
    return Stimulus.create_with_image(sketch_png(drawing), study=study, num_points=len(drawing), **fields)


def add_real_stimuli(study, category, per_category, seed, data_dir, summary, progress=None, simplify_epsilon=0.0):
    """The first `per_category` drawings of a seeded permutation of the test split, skipping
    drawings this study already uses as sources of conditional samples. They are simplified as
    the category's model's training drawings were (`simplify_epsilon`), so that real and
    generated sketches differ in nothing but how they were made."""
    tests, keys = load_category(category, data_dir, simplify_epsilon, splits=["test"], with_keys=True)
    test, keys = tests["test"], keys["test"]
    file_name = f"{category}.npz"
    existing = dict(study.stimuli.filter(source=Stimulus.Source.REAL, category=category, dataset_file=file_name)
                    .values_list("dataset_index", "num_points"))
    if any(len(test[index]) != points for index, points in existing.items()):
        raise StimulusError(f"{category}: this study's real drawings were simplified otherwise than this "
                            f"checkpoint's training drawings (simplify_epsilon {simplify_epsilon:g}); "
                            "real and generated sketches would differ in more than how they were made: "
                            "use a new --study")
    encoded = set(study.stimuli.filter(source=Stimulus.Source.GENERATED, category=category, dataset_file=file_name)
                  .values_list("dataset_index", flat=True))
    chosen = [int(i) for i in real_permutation(category, len(test), seed) if int(i) not in encoded][:per_category]
    if len(chosen) < per_category:
        raise StimulusError(f"{category}: the test split has only {len(chosen)} drawings free for real stimuli, "
                            f"{per_category} were asked for")
    for index in chosen:
        if index not in existing:
            write_stimulus(study, test[index], category=category, source=Stimulus.Source.REAL,
                           dataset_file=file_name, dataset_split="test", dataset_index=index,
                           dataset_key=keys[index] or "")
            summary.add("real", category)
        if progress:
            progress()


def conditional_sources(study, category, seed, data_dir, config, scale_factor):
    """Test drawings to encode for conditional samples: the seeded permutation read from its end,
    without the drawings the study shows as real stimuli. Every condition encodes the same ones,
    so conditions compare on the same drawings (Study.choose_stimuli never shows a participant two
    sketches of one drawing). Returns (indices, normalised drawings, key_id of every test drawing)."""
    max_len = config.max_seq_len
    tests, keys = load_category(category, data_dir, config.simplify_epsilon, splits=["test"],
                                scale_categories=config.categories, with_keys=True)
    raw_test = tests["test"]
    shown = set(study.stimuli.filter(source=Stimulus.Source.REAL, category=category)
                .values_list("dataset_index", flat=True))
    # Drawings longer than max_len are not the model's input: its preprocessing drops them.
    order = [int(i) for i in real_permutation(category, len(raw_test), seed)[::-1]
             if int(i) not in shown and len(raw_test[int(i)]) <= max_len]
    if not order:
        raise StimulusError(f"{category}: no test drawings left to encode that are not shown as real stimuli")
    return order, normalise(clamp_and_filter([raw_test[i] for i in order], max_len), scale_factor), keys["test"]


def sample_chunk(checkpoint, category, condition, seed, chunk, sources, device):
    """SAMPLE_CHUNK samples, the same for the same arguments. Returns (strokes, ended, source index
    or None per sample)."""
    generator = torch.Generator(device=device).manual_seed(
        int(np.random.default_rng(category_seed(seed, category, condition_key(condition), chunk)).integers(2**62)))
    model, payload = checkpoint.model, checkpoint.payload
    temperature, rule = condition.temperature, condition.temperature_rule
    if condition.mode == Condition.Mode.CONDITIONAL:
        order, drawings, _ = sources
        picks = [(chunk * SAMPLE_CHUNK + k) % len(order) for k in range(SAMPLE_CHUNK)]
        z = encode(model, [drawings[p] for p in picks], generator=generator, device=device)
        result = sample(model, z=z, temperature=temperature, scale_factor=payload["scale_factor"],
                        generator=generator, device=device, temperature_rule=rule)
        return result.strokes, result.ended, [order[p] for p in picks]
    if model.config.conditional:
        z = torch.randn(SAMPLE_CHUNK, model.config.z_size, device=device, generator=generator)
        result = sample(model, z=z, temperature=temperature, scale_factor=payload["scale_factor"],
                        generator=generator, device=device, temperature_rule=rule)
    else:
        result = sample(model, n=SAMPLE_CHUNK, temperature=temperature, scale_factor=payload["scale_factor"],
                        generator=generator, device=device, temperature_rule=rule)
    return result.strokes, result.ended, [None] * SAMPLE_CHUNK


def add_generated_stimuli(study, condition, checkpoint, category, per_category, seed, data_dir, device,
                          summary, progress=None):
    """Accept samples from the category's stream in order until `per_category` are stored; with
    reject_degenerate, degenerate ones are skipped and counted. When they are all stored already
    (a rerun), nothing is sampled: the counts come from what was stored."""
    label = condition.label()
    counted = stored_counts(study, condition, category, per_category)
    if counted is not None:
        summary.degenerate[(label, category)], summary.rejected[(label, category)] = counted[:2], counted[2]
        for _ in range(per_category if progress else 0):
            progress()
        return
    existing = set(study.stimuli.filter(condition=condition, category=category).values_list("sample_index", flat=True))
    sources = None
    if condition.mode == Condition.Mode.CONDITIONAL:
        sources = conditional_sources(study, category, seed, data_dir, checkpoint.model.config,
                                      checkpoint.payload["scale_factor"])
    accepted = rejected = degenerate = sampled = 0
    chunk = 0
    while accepted < per_category:
        if sampled >= per_category * MAX_ATTEMPTS_PER_SKETCH:
            raise StimulusError(f"{category}: only {accepted} of {sampled} samples were not degenerate; "
                                f"lower the temperature or drop --reject-degenerate")
        strokes, ended, source_indices = sample_chunk(checkpoint, category, condition, seed, chunk, sources, device)
        for k in range(SAMPLE_CHUNK):
            if accepted == per_category:
                break
            index = chunk * SAMPLE_CHUNK + k
            sampled += 1
            bad = is_degenerate(strokes[k], ended[k])
            degenerate += bad
            if bad and condition.reject_degenerate:
                rejected += 1
                continue
            accepted += 1
            if index not in existing:
                encoded = source_indices[k] is not None
                write_stimulus(study, strokes[k], category=category, source=Stimulus.Source.GENERATED,
                               condition=condition, seed=seed, sample_index=index, ended=bool(ended[k]),
                               dataset_file=f"{category}.npz" if encoded else "",
                               dataset_split="test" if encoded else "", dataset_index=source_indices[k],
                               dataset_key=(sources[2][source_indices[k]] or "") if encoded else "")
                summary.add("generated", category, label)
            if progress:
                progress()
        chunk += 1
    summary.degenerate[(label, category)] = (degenerate, sampled)
    summary.rejected[(label, category)] = rejected
    if condition.reject_degenerate:
        # The count for the whole requested set (a rerun recomputes the same stream).
        condition.rejected = {**condition.rejected, category: rejected}
        condition.save(update_fields=["rejected"])


def stored_counts(study, condition, category, per_category):
    """(degenerate, sampled, rejected) of the stream up to its first `per_category` accepted samples,
    if they are all stored; else None. Samples are accepted and stored in stream order, so the
    stored ones are the stream's first accepted ones, and with reject_degenerate every index missing
    among them was a rejected degenerate sample."""
    stored = list(study.stimuli.filter(condition=condition, category=category).order_by("sample_index")
                  .values_list("sample_index", "num_points", "ended")[:per_category])
    if len(stored) < per_category:
        return None
    sampled = stored[-1][0] + 1 if stored else 0
    if not condition.reject_degenerate and sampled != per_category:
        return None  # without rejection the first per_category samples are all kept: one is missing
    # Only the number of points and whether it ended decide the rule: a stand-in of that many points.
    kept_degenerate = sum(is_degenerate(np.zeros((points, 3)), ended) for _, points, ended in stored)
    rejected = sampled - per_category
    return kept_degenerate + rejected, sampled, rejected


def get_condition(study, checkpoint, temperature, mode, reject_degenerate,
                  temperature_rule=Condition.TemperatureRule.PAPER):
    defining = dict(study=study, checkpoint_sha256=checkpoint.sha256, temperature=temperature, mode=mode,
                    reject_degenerate=reject_degenerate, temperature_rule=temperature_rule)
    try:
        with transaction.atomic():
            condition, _ = Condition.objects.get_or_create(**defining, defaults={"checkpoint_name": checkpoint.path})
    except IntegrityError:
        condition = Condition.objects.get(**defining)
    return condition


def write_contact_sheets(study, folder):
    """Sheets of the study's real and of each condition's generated stimuli, made of the very PNGs
    participants see, for the researcher to inspect: each cell captioned with its category and the
    stimulus's public id (the id the results name sketches by), each sheet titled with what it shows
    and named after it. Returns [(path, title)]."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    groups = [("real", "real sketches", study.stimuli.filter(source=Stimulus.Source.REAL))]
    groups += [(f"generated-{file_name_part(c.label())}", f"generated: {c.label()}", study.stimuli.filter(condition=c))
               for c in study.conditions.all()]
    for name, title, stimuli in groups:
        stimuli = list(stimuli.select_related("image").order_by("category", "pk"))
        if not stimuli:
            continue
        path = folder / f"{name}.png"
        path.write_bytes(contact_sheet([bytes(s.image.png) for s in stimuli], columns=10, cell=128,
                                       captions=[f"{s.category}\n{s.public_id}" for s in stimuli],
                                       title=f"{study.slug}, {title}"))
        written.append((path, title))
    return written


def file_name_part(text):
    """Text as part of a file name: letters, digits, dots and underscores, the rest one dash."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")
