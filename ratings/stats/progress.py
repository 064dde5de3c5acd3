"""A running study's progress: its ratings per source x category x condition against the target, who
has consented, started, finished or been excluded, how often attention checks fail, the headline
interval's half-width now, and how many participants it takes to reach the study's target
half-width, estimated by planning.plan from the ratings so far."""

import hashlib
import math
from dataclasses import dataclass

import pandas as pd

from ratings.models import Stimulus

from .frame import REAL_OR_POSSIBLY, exclusion_reasons, fails_attention, participants_frame
from .headline import pct
from .planning import REPLICATES, Design, PlanningError, measured_assumptions, plan

# Raters of generated sketches an estimate needs: fewer say nothing about how raters differ.
MIN_RATERS_TO_ESTIMATE = 3


def study_design(study):
    """The planner's Design of a study: its generated sketches, their category x condition cells,
    and how many of them a participant grades (in proportion, as Study.choose_stimuli gives them)."""
    stimuli = study.stimuli.exclude(source=Stimulus.Source.ATTENTION)
    generated = stimuli.filter(source=Stimulus.Source.GENERATED)
    n_generated, n_all = generated.count(), stimuli.count()
    if n_generated < 2:
        return None
    cells = generated.values_list("category", "condition").distinct().count()
    per_participant = min(n_generated, max(1, round(study.items_per_participant * n_generated / n_all)))
    return Design(sketches=n_generated, per_participant=per_participant, cells=cells)


def cell_table(study, stimuli, counted):
    """Per source x category x condition: sketches, counted ratings, the target (the ratings the
    study's target participants give it, in proportion to its sketches) and the share of it done
    where the study has a target, and ratings per sketch."""
    cells = stimuli[stimuli["source"] != Stimulus.Source.ATTENTION].copy()
    cells["source"] = cells["source"].astype(str)
    ratings = (counted.groupby(["source", "category", "condition"]).size().rename("ratings").reset_index()
               if not counted.empty else pd.DataFrame(columns=["source", "category", "condition", "ratings"]))
    table = cells.merge(ratings, on=["source", "category", "condition"], how="left")
    table["ratings"] = table["ratings"].fillna(0).astype(int)
    total = table["stimuli"].sum()
    if study.target_participants and total:
        target = (table["stimuli"] * study.target_participants * study.items_per_participant / total).round()
        table["target"] = target.astype(int)
        table["done"] = [pct(r / t, 0) if t else "n/a" for r, t in zip(table["ratings"], table["target"])]
    table["per sketch"] = (table["ratings"] / table["stimuli"]).round(1)
    columns = ["source", "category", "condition", "sketches", "ratings"]
    columns += ["target", "done"] if "target" in table else []
    return table.rename(columns={"stimuli": "sketches"})[columns + ["per sketch"]]


def participant_counts(study):
    """How many participants consented, started (pressed Start), finished, are in progress
    (started, not finished) and are excluded (by the rules of frame.exclusion_reasons), read
    without loading the study's ratings: the study list shows it for every study."""
    from ratings.models import Rating

    participants = participants_frame(study)
    started = study.participants.filter(started__isnull=False)
    checks = pd.DataFrame(list(Rating.objects.filter(participant__study=study, stimulus__source=Stimulus.Source.ATTENTION)
                               .values_list("participant__token", "grade")), columns=["participant", "grade"])
    return {
        "consented": len(participants),
        "started": started.count(),
        "finished": int(participants["finished"].sum()),
        "in_progress": started.filter(finished__isnull=True).count(),
        "excluded": len(exclusion_reasons(participants, checks.assign(attention_check=True))),
    }


def attention_failures(ratings):
    """{answered: participants who graded an attention check, failed: those of them who failed the rule}."""
    checks = ratings[ratings["attention_check"]] if not ratings.empty else ratings
    failed = checks.groupby("participant")["grade"].agg(fails_attention) if not checks.empty else pd.Series()
    return {"answered": int(len(failed)), "failed": int(failed.sum())}


def passed_ratings(counted):
    """The counted ratings of generated sketches, with `passed`: graded real or possibly real."""
    generated = counted[counted["source"] == Stimulus.Source.GENERATED]
    return generated.assign(passed=generated["grade"].isin(REAL_OR_POSSIBLY))


@dataclass
class Progress:
    cells: pd.DataFrame  # cell_table
    participants: dict  # consented, started, finished, excluded, in_progress, counted
    attention: dict  # attention_failures
    half_width: float  # the headline interval's now, as a share; NaN without ratings
    target_half_width: float  # as a share
    target_participants: int | None
    estimate: object  # planning.Plan from the ratings so far, or None
    estimate_missing: str  # why there is no estimate, or ""

    @property
    def more_participants(self):
        if self.estimate is None or not self.estimate.reached:
            return None
        return max(0, self.estimate.participants - self.participants["counted"])

    def sentences(self):
        """The progress in words, one sentence per figure."""
        p, a = self.participants, self.attention
        lines = [f"{p['consented']} consented, {p['started']} started, {p['finished']} finished, "
                 f"{p['in_progress']} in progress, {p['excluded']} excluded; {p['counted']} counted"
                 + (f" (target {self.target_participants} participants)." if self.target_participants
                    else " (no target number of participants set: plan_study suggests one).")]
        if a["answered"]:
            lines.append(f"Attention checks: {a['failed']} of the {a['answered']} participants who graded one failed "
                         f"({pct(a['failed'] / a['answered'])}).")
        else:
            lines.append("Attention checks: none graded yet.")
        target = points(self.target_half_width)
        if math.isnan(self.half_width):
            lines.append(f"The headline's 95% interval: no ratings of generated sketches yet (target ±{target}).")
        else:
            lines.append(f"The headline's 95% interval is now ±{points(self.half_width)} points wide "
                         f"(target ±{target}).")
        lines.append(self.estimate_sentence())
        return lines

    def estimate_sentence(self):
        target = points(self.target_half_width)
        if self.estimate is None:
            return f"Participants needed for ±{target}: {self.estimate_missing}"
        measured = self.estimate.assumptions
        basis = (f"from the ratings so far (share {pct(measured.share)}, spread of raters {measured.rater_sd:.2f} "
                 f"and of sketches {measured.sketch_sd:.2f} on the logit scale; by simulating the study "
                 f"{REPLICATES} times with the results' bootstrap)")
        if not self.estimate.reached and self.estimate.floor >= self.target_half_width:
            return (f"Participants needed for ±{target}: not reachable with this study's "
                    f"{self.estimate.design.sketches} generated sketches, {basis}: the interval stays wider than "
                    f"about ±{points(self.estimate.floor)} however many take part; add sketches.")
        if not self.estimate.reached:
            return f"Participants needed for ±{target}: more than {max(self.estimate.widths)}, {basis}."
        if self.more_participants == 0:
            return f"Participants needed for ±{target}: about {self.estimate.participants}, no more than now, {basis}."
        return (f"Participants needed for ±{target}: about {self.estimate.participants} counted in all, "
                f"{self.more_participants} more than now, {basis}.")

    def as_dict(self):
        from .exports import records

        estimate = None
        if self.estimate is not None:
            estimate = {"participants": self.estimate.participants, "more_participants": self.more_participants,
                        "floor_half_width": self.estimate.floor, **vars(self.estimate.assumptions)}
        return {"cells": records(self.cells), "participants": self.participants, "attention": self.attention,
                "half_width": self.half_width, "target_half_width": self.target_half_width,
                "target_participants": self.target_participants, "estimate": estimate,
                "sentences": self.sentences()}


def remembered_plan(design, assumptions, target):
    """planning.plan, kept in Django's cache for the same inputs (it is a function of them): the
    results page asks for it on every load, and it takes seconds."""
    from django.core.cache import cache

    key = "ratings.plan." + hashlib.sha256(repr((design, assumptions, target)).encode()).hexdigest()
    found = cache.get(key)
    if found is None:
        found = plan(design, assumptions, target)
        cache.set(key, found, 24 * 3600)
    return found


def points(share):
    return f"{share * 100:.1f}"


def study_progress(results, estimate=True):
    """The Progress of the study behind `results` (a StudyResults); estimate=False leaves out the
    estimate, which simulates the study many times (seconds)."""
    study = results.study
    counted = results.counted
    headline = results.headline
    half_width = math.nan
    if headline is not None and not math.isnan(headline["generated"]["ci_low"]):
        half_width = (headline["generated"]["ci_high"] - headline["generated"]["ci_low"]) / 2
    target = study.target_half_width / 100
    plan_, missing = None, ""
    rated = passed_ratings(counted)
    design = study_design(study)
    if design is None:
        missing = "the study has no generated sketches yet."
    elif rated["participant"].nunique() < MIN_RATERS_TO_ESTIMATE:
        missing = f"an estimate needs counted ratings of generated sketches from {MIN_RATERS_TO_ESTIMATE} participants."
    elif not estimate:
        missing = "not estimated here."
    else:
        try:
            plan_ = remembered_plan(design, measured_assumptions(rated), target)
        except PlanningError as error:
            missing = f"{error}."
    return Progress(
        cells=cell_table(study, results.stimuli, counted),
        participants={**participant_counts(study), "counted": results.participants["counted"]},
        attention=attention_failures(results.ratings),
        half_width=half_width, target_half_width=target, target_participants=study.target_participants,
        estimate=plan_, estimate_missing=missing,
    )
