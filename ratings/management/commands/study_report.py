"""study_report: print a study's results (or them as JSON)."""

import textwrap

from django.core.management.base import BaseCommand

from ratings.management.options import add_results_arguments, existing_study
from ratings.stats.exports import display_summary, to_json
from ratings.stats.frame import SCORE_MAPPING
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
        "Print a study's results: the headline with its verdicts, stimuli by source, category and "
        "condition, participants and exclusions, grade shares with bootstrap confidence intervals, "
        "agreement between raters and the best- and worst-rated generated sketches. Works before "
        "any ratings exist (then: the stimulus counts). --json prints one JSON object instead."
    )

    def add_arguments(self, parser):
        add_results_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print only one JSON object, for scripts")

    def handle(self, *args, **opts):
        study = existing_study(opts["study"])
        results = study_results(study, include_excluded=opts["include_excluded"],
                                bootstrap=opts["bootstrap"], seed=opts["seed"])
        if opts["json"]:
            self.stdout.write(to_json(results))
        else:
            self.stdout.write(report_text(results))


def report_text(results):
    study, method = results.study, results.method
    lines = [f"Study {study.slug}: {study.title}", ""]
    if results.simulated_warning:
        lines += [wrapped("WARNING: " + results.simulated_warning), ""]
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
        "Stimuli by source, category and condition", table(results.stimuli), "",
        f"Participants: {participants['started']} started, {participants['finished']} finished, "
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
            "Grade shares by source, category and condition", table(display_summary(results.summary)), "",
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
