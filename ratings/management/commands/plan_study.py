"""plan_study: how many participants a study needs for its headline's interval to reach a half-width."""

from django.core.management.base import BaseCommand, CommandError

from ratings.management.options import existing_study


def percent(value):
    number = float(value)
    if not 0 < number < 100:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Answer 'how many participants for a 95% interval of ±X points on the headline claim' (generated sketches "
        "graded real or possibly real) before a study runs: studies of the given design are simulated, each "
        "interval computed by the results' own bootstrap, and the fewest participants whose median half-width "
        "reaches the target are searched for. Raters' leniency and sketches' quality vary (normal on the logit "
        "scale, --rater-sd and --sketch-sd); --like takes the design and these spreads from a study's ratings "
        "so far (a pilot or a dry run). Takes seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--half-width", type=percent, default=5.0,
                            help="the target: the interval's half-width in percentage points (default 5)")
        parser.add_argument("--share", type=percent, default=None,
                            help="the assumed percentage of generated sketches' ratings that are real or possibly "
                                 "real (default 50, where an interval is widest)")
        parser.add_argument("--sketches", type=int, default=None, help="generated sketches in the study (default 100)")
        parser.add_argument("--real", type=int, default=None,
                            help="real sketches in the study (default: as many as generated)")
        parser.add_argument("--items", type=int, default=None,
                            help="items per participant, real and generated (default 40, a new study's)")
        parser.add_argument("--cells", type=int, default=None,
                            help="categories x generation conditions the generated sketches are spread over "
                                 "(default 1)")
        parser.add_argument("--rater-sd", type=float, default=None,
                            help="how much raters differ in leniency: a standard deviation on the logit scale "
                                 "(default 1.0)")
        parser.add_argument("--sketch-sd", type=float, default=None,
                            help="how much generated sketches differ in quality, likewise (default 1.0)")
        parser.add_argument("--like", metavar="STUDY", default=None,
                            help="take the design and the measured share and spreads from this study's ratings so "
                                 "far; options given as well override them")
        parser.add_argument("--replicates", type=int, default=None, help="simulated studies per size (default 16)")
        parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")

    def handle(self, *args, **opts):
        from ratings.stats.planning import (DEFAULT_RATER_SD, DEFAULT_SKETCH_SD, PLAN_RESAMPLES, REPLICATES,
                                            Assumptions, Design, PlanningError, plan)

        design, measured, source = self.from_study(opts["like"]) if opts["like"] else (None, None, "")
        sketches = first(opts["sketches"], design and design.sketches, 100)
        cells = first(opts["cells"], design and design.cells, 1)
        if design and opts["sketches"] is None and opts["real"] is None and opts["items"] is None:
            per_participant = design.per_participant
        else:
            real = first(opts["real"], sketches)
            items = first(opts["items"], 40)
            per_participant = min(sketches, max(1, round(items * sketches / (sketches + real))))
        try:
            design = Design(sketches=sketches, per_participant=per_participant, cells=cells)
            assumptions = Assumptions(
                share=first(opts["share"] and opts["share"] / 100, measured and measured.share, 0.5),
                rater_sd=first(opts["rater_sd"], measured and measured.rater_sd, DEFAULT_RATER_SD),
                sketch_sd=first(opts["sketch_sd"], measured and measured.sketch_sd, DEFAULT_SKETCH_SD))
            replicates = first(opts["replicates"], REPLICATES)
            found = plan(design, assumptions, opts["half_width"] / 100, replicates=replicates, seed=opts["seed"])
        except PlanningError as error:
            raise CommandError(str(error))
        self.stdout.write(plan_text(found, source, replicates, PLAN_RESAMPLES))

    def from_study(self, slug):
        from ratings.stats.progress import passed_ratings, study_design
        from ratings.stats.results import study_results
        from ratings.stats.planning import measured_assumptions

        study = existing_study(slug)
        design = study_design(study)
        if design is None:
            raise CommandError(f"Study {slug!r} has no generated sketches to plan by.")
        rated = passed_ratings(study_results(study, bootstrap=1).counted)
        measured = measured_assumptions(rated) if rated["participant"].nunique() >= 2 else None
        return design, measured, (f"study {slug}: {rated['participant'].nunique()} counted participants, "
                                  f"{len(rated)} ratings of generated sketches")


def first(*values):
    """The first value that is not None."""
    return next(value for value in values if value is not None)


def plan_text(found, source, replicates, resamples):
    design, assumptions = found.design, found.assumptions
    target = found.target * 100
    lines = [
        f"Plan for a 95% interval of ±{target:g} points on the headline (generated sketches graded real or "
        "possibly real):",
        f"  design: {design.sketches} generated sketches in {design.cells} cell{'s' * (design.cells != 1)} "
        f"(category x condition); each participant grades {design.per_participant} of them",
        f"  assumed: share {assumptions.share * 100:.1f}%, spread of raters {assumptions.rater_sd:.2f} and of "
        f"sketches {assumptions.sketch_sd:.2f} (standard deviations on the logit scale)"
        + (f", measured from {source}" if source else ""),
        f"  simulated: {replicates} studies per size, each interval by the results' bootstrap "
        f"({resamples} resamples)",
        "",
        "  participants  median half-width (points)",
        *(f"  {n:12d}  {width * 100:.1f}" for n, width in sorted(found.widths.items())),
        "",
    ]
    if found.reached:
        lines.append(f"About {found.participants} counted participants (excluded ones not counted: recruit more to "
                     "make up for them). Set it as the study's target participants in the admin.")
    else:
        lines.append(f"Not reached with {max(found.widths)} participants.")
    if found.floor > 0:
        lines.append(f"With {design.sketches} generated sketches the interval cannot get narrower than about "
                     f"±{found.floor * 100:.1f} points however many take part: more sketches lower that floor.")
    return "\n".join(lines) + "\n"
