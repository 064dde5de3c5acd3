"""generate_samples: make a study's stimuli (real drawings and samples of trained checkpoints)."""

import re
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from generator.checkpoint import CheckpointError, resolve_device
from generator.data import SketchDataError, load_category
from generator.management.options import (add_data_dir_argument, add_device_argument, add_temperature_rule_argument,
                                         check_seed, parse_categories)
from ratings.attention import ensure_attention_stimuli
from ratings.database import require_migrated_database
from ratings.management.options import add_study_argument
from ratings.models import Condition, Stimulus, Study
from ratings.stimuli import (
    StimulusError,
    Summary,
    add_generated_stimuli,
    add_real_stimuli,
    checkpoint_for_each_category,
    get_condition,
    load_checkpoints,
    write_contact_sheets,
)

class Command(BaseCommand):
    help = (
        "Make a study's stimuli: real drawings from each category's test split and sketches sampled from "
        "trained checkpoints, all rendered by the same renderer and stored with opaque names. Creates the "
        "study if the slug is new (edit its title, instructions and items per participant in the admin). "
        "Running the same command again adds nothing; a run cut short is completed by running it again; "
        "running it with another --temperature, --temperature-rule, --mode or --reject-degenerate adds a generation "
        "condition to the same study. "
        "--generated and --real are totals, split equally over the categories."
    )

    def add_arguments(self, parser):
        add_study_argument(parser, help="study slug (letters, digits, - and _)")
        parser.add_argument("--checkpoint", action="append", default=None,
                            help="a checkpoint from train_sketch_rnn; repeat for one per category "
                                 "(default: the demo checkpoints in fixtures/checkpoints)")
        parser.add_argument("--categories", default=None,
                            help="comma-separated categories (default: all categories of the checkpoints)")
        parser.add_argument("--generated", type=int, default=100, help="generated stimuli in all (default 100)")
        parser.add_argument("--real", type=int, default=100, help="real stimuli in all (default 100)")
        parser.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default 0.5)")
        add_temperature_rule_argument(parser)
        parser.add_argument("--mode", choices=["unconditional", "conditional"], default="unconditional",
                            help="unconditional: z ~ N(0, I); conditional: encode test drawings that are not "
                                 "shown as real stimuli and decode them (default unconditional)")
        parser.add_argument("--reject-degenerate", action="store_true",
                            help="skip samples that are empty or hit the length limit without ending, and "
                                 "draw more instead; the number rejected per category is printed and stored. "
                                 "Off by default: without it every sample is kept")
        parser.add_argument("--seed", type=int, default=0, help="selects the real drawings and the samples (default 0)")
        add_data_dir_argument(parser)
        add_device_argument(parser)

    def handle(self, *args, **opts):
        started = time.perf_counter()
        data_dir = str(opts["data_dir"] or settings.QUICKDRAW_DATA_DIR)
        mode = Condition.Mode(opts["mode"])
        self.check_options(opts)
        require_migrated_database()  # before minutes of sampling, not after
        try:
            device = resolve_device(opts["device"])
        except ValueError as e:
            raise CommandError(str(e))
        try:
            checkpoints = load_checkpoints(opts["checkpoint"], device)
            categories = (parse_categories(opts["categories"]) if opts["categories"]
                          else list(dict.fromkeys(c for ck in checkpoints for c in ck.categories)))
            by_category = checkpoint_for_each_category(checkpoints, categories, mode, opts["temperature"])
        except (CheckpointError, StimulusError) as e:
            raise CommandError(str(e))
        self.check_data(categories, data_dir, opts)

        with transaction.atomic():
            study, created = Study.objects.get_or_create(slug=opts["study"])
        summary = Summary()
        total = opts["real"] + opts["generated"]
        bar = tqdm(total=total, unit="stimulus", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        try:
            for category in categories:
                add_real_stimuli(study, category, opts["real"] // len(categories), opts["seed"], data_dir, summary,
                                 bar.update, by_category[category].model.config.simplify_epsilon)
            for category in categories if opts["generated"] else []:
                checkpoint = by_category[category]
                condition = get_condition(study, checkpoint, opts["temperature"], mode, opts["reject_degenerate"],
                                          opts["temperature_rule"])
                add_generated_stimuli(study, condition, checkpoint, category, opts["generated"] // len(categories),
                                      opts["seed"], data_dir, device, summary, bar.update)
            attention = ensure_attention_stimuli(study)
        except (StimulusError, SketchDataError) as e:
            raise CommandError(str(e))
        finally:
            bar.close()
        sheets = write_contact_sheets(study, Path(settings.REPORTS_DIR) / study.slug)
        self.print_summary(study, created, summary, attention, sheets, time.perf_counter() - started)

    def check_options(self, opts):
        for name in ("real", "generated"):
            if opts[name] < 0:
                raise CommandError(f"--{name} must be 0 or more")
        if not 0 <= opts["temperature"] <= 2:
            raise CommandError("--temperature must be between 0 (greedy) and 2")
        check_seed(opts["seed"])
        if not re.fullmatch(r"[-a-zA-Z0-9_]+", opts["study"]):
            raise CommandError(f"--study '{opts['study']}' is not a slug: use letters, digits, - and _")

    def check_data(self, categories, data_dir, opts):
        """Every data file readable and big enough before anything is written."""
        for name in ("real", "generated"):
            if opts[name] % len(categories):
                raise CommandError(f"--{name} {opts[name]} cannot be split equally over {len(categories)} categories")
        for category in categories:
            try:
                test_size = len(load_category(category, data_dir)["test"])
            except SketchDataError as e:
                raise CommandError(str(e))
            if opts["real"] // len(categories) > test_size:
                raise CommandError(f"{category}: --real asks for {opts['real'] // len(categories)} drawings per "
                                   f"category, but its test split holds {test_size}")

    def print_summary(self, study, created, summary, attention, sheets, seconds):
        w = self.stdout.write
        w(f"Study '{study.slug}' ({'created' if created else 'existing'}): added "
          f"{sum(summary.created.values())} stimuli in {seconds:.1f} s.")
        for (source, category, condition), count in sorted(summary.created.items()):
            w(f"  + {count:4d} {source:9s} {category:15s} {condition}")
        for (condition, category), (bad, sampled) in sorted(summary.degenerate.items()):
            rejected = summary.rejected[(condition, category)]
            note = f", {rejected} rejected" if rejected else ""
            w(f"  degenerate samples {category} [{condition}]: {bad} of {sampled} ({100 * bad / sampled:.0f}%){note}")
        for warning in degenerate_warnings(summary):
            w(warning)
        counts = {}
        for source, category, condition_id in study.stimuli.values_list("source", "category", "condition"):
            counts[(source, category, condition_id)] = counts.get((source, category, condition_id), 0) + 1
        labels = {c.pk: c.label() for c in study.conditions.all()}
        w(f"The study now holds {sum(counts.values())} stimuli ({len(attention)} attention checks):")
        for (source, category, condition_id), count in sorted(counts.items(), key=lambda kv: str(kv[0])):
            w(f"  {count:4d} {source:9s} {category or '-':15s} {labels.get(condition_id, '')}")
        real, generated = (sum(n for (source, *_), n in counts.items() if source == kind)
                           for kind in (Stimulus.Source.REAL, Stimulus.Source.GENERATED))
        if real and generated and real != generated:
            # Study.choose_stimuli: in proportion, so that no sketch is shown more often for its source.
            w(f"Participants get real and generated sketches as {real} to {generated}, in proportion to the study's "
              f"stimuli; for half and half, make as many real as generated (--real {generated} in all).")
        for path, title in sheets:
            w(f"Contact sheet: {path} ({title})")


DEGENERATE_WARNING_SHARE = 0.10


def degenerate_warnings(summary):
    """A warning for each condition of which more than DEGENERATE_WARNING_SHARE of the samples drawn
    were degenerate (empty, or not ended within the length limit), with the remedies."""
    totals = {}
    for (condition, category), (bad, sampled) in summary.degenerate.items():
        rejected = summary.rejected[(condition, category)]
        previous = totals.get(condition, (0, 0, 0))
        totals[condition] = (previous[0] + bad, previous[1] + sampled, previous[2] + rejected)
    warnings = []
    for condition, (bad, sampled, rejected) in sorted(totals.items()):
        if not sampled or bad / sampled <= DEGENERATE_WARNING_SHARE:
            continue
        share = f"{100 * bad / sampled:.0f}% ({bad} of {sampled})"
        if rejected:
            warnings.append(f"WARNING: {share} of the samples of {condition} were degenerate (empty, or not ended "
                            "within the length limit), more than 10%: they were replaced (--reject-degenerate), so "
                            "the stimuli are a selection of what the model draws. Train the model longer for one "
                            "that needs no rejecting.")
        else:
            warnings.append(f"WARNING: {share} of the samples of {condition} are degenerate (empty, or not ended "
                            "within the length limit), more than 10%, and participants will see them. Train the "
                            "model longer, or make the stimuli with --reject-degenerate, which draws others in their "
                            "place (as a generation condition of its own).")
    return warnings
