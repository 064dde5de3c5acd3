"""study_report: print a study's results (or them as JSON)."""

import textwrap

from django.core.management.base import BaseCommand

from ratings.management.options import add_results_arguments, existing_study
from ratings.stats.exports import summary_tables, to_json
from ratings.stats.frame import SCORE_MAPPING
from ratings.stats.progress import study_progress
from ratings.stats.results import study_results
from ratings.stats.summary import best_and_worst


def indent(text, prefix="  "):
    return textwrap.indent(text, prefix)


def table(frame):
    return indent(frame.to_string(index=False)) if not frame.empty else "  (none)"


def wrapped(text):
    return textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent="  ")


class Command(BaseCommand):
    help = (
        "Print a study's results: the headline with its verdicts, its progress (ratings per cell against the "
        "target, finished and excluded participants, attention-check failures, the headline interval's width "
        "now and an estimate of the participants that reach the study's target width), stimuli by source, "
        "category and condition, participants and exclusions, grade shares with bootstrap confidence intervals, "
        "agreement between raters and the best- and worst-rated generated sketches. Works before "
        "any ratings exist (then: the stimulus counts). --json prints one JSON object instead."
    )

    def add_arguments(self, parser):
        add_results_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print only one JSON object, for scripts")
        parser.add_argument("--no-estimate", action="store_true",
                            help="leave out the estimate of the participants needed (it simulates the study many "
                                 "times, which takes seconds)")

    def handle(self, *args, **opts):
        study = existing_study(opts["study"])
        results = study_results(study, include_excluded=opts["include_excluded"],
                                bootstrap=opts["bootstrap"], seed=opts["seed"])
        progress = study_progress(results, estimate=not opts["no_estimate"])
        if opts["json"]:
            self.stdout.write(to_json(results, progress))
        else:
            self.stdout.write(report_text(results, progress))


def report_text(results, progress):
    study, method = results.study, results.method
    lines = [f"Study {study.slug}: {study.title}", ""]
    for warning in (results.simulated_warning, study.uncredited_warning):
        if warning:
            lines += [wrapped("WARNING: " + warning), ""]
    if results.has_ratings:
        headline = results.headline
        lines += [
            "Headline (shares of ratings)",
            wrapped(headline["generated"]["sentence"]),
            wrapped(headline["real"]["sentence"]),
            *(wrapped(condition["sentence"]) for condition in headline["by_condition"]),
            wrapped(headline["context"]),
            wrapped(headline["by_sketch"]),
            wrapped(headline["discrimination_error"]["sentence"]),
            "",
        ]
    else:
        lines += [wrapped(results.no_ratings_sentence), ""]
    participants = results.participants
    lines += [
        "Progress", *(wrapped(sentence) for sentence in progress.sentences()),
        table(progress.cells), "",
        "Stimuli by source, category and condition", table(results.stimuli), "",
        f"Participants: {participants['consented']} consented, {participants['finished']} finished, "
        f"{participants['excluded']} excluded; counted: {participants['counted']} participants, "
        f"{participants['counted_ratings']} ratings ({participants['attention_check_ratings']} "
        f"attention-check ratings, never counted).",
        "Excluded participants " + ("(counted here, on request)" if results.include_excluded
                                    else "(left out; --include-excluded counts them)"),
        table(results.exclusions),
        wrapped(method["exclusions"]),
        "",
    ]
    if results.has_ratings:
        agreement = results.agreement
        best, worst = best_and_worst(results.items)
        lines += [
            "Grade shares (percent of ratings, 95% CI in brackets)",
            *(line for title, frame in summary_tables(results.summary) for line in (f"  {title}", table(frame), "")),
            "Agreement between raters",
            wrapped(agreement["krippendorff"]["sentence"]),
            wrapped(agreement["fleiss"]["sentence"]),
            "",
            f"Best-rated generated sketches (mean grade, {SCORE_MAPPING})", table(item_table(best)), "",
            "Worst-rated generated sketches", table(item_table(worst)), "",
            "Method",
            wrapped(method["bootstrap"] + f" {method['resamples']} resamples, seed {method['seed']}."),
            wrapped("Verdict: " + method["verdict"] + "."),
            wrapped(method["discrimination_error"]),
        ]
    return "\n".join(lines)


def item_table(items):
    return items[["stimulus", "category", "condition", "ratings", "mean_score"]].round({"mean_score": 2})
