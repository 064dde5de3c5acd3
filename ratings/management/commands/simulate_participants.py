"""simulate_participants: dry-run a study with simulated participants, or delete them."""

from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from ratings.management.options import add_study_argument, existing_study, positive
from ratings.simulation import (PID_PREFIX, POLICIES, ServerTransport, Simulation, SimulationError,
                                TestClientTransport, delete_simulated)


def root_url(value):
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise ValueError(value)
    return value


class Command(BaseCommand):
    help = (
        "Dry-run a study before recruiting anyone: N simulated participants go through the participant "
        "pages over HTTP (recruitment link, consent, the drawing task if there is one, instructions, every "
        "sketch with its attention checks, finish page, CSRF tokens included), so every view, check and "
        "database write of a real session happens. Then it prints how many finished, how many ratings and "
        "drawings were stored and how many attention checks were passed. Requests go through Django's test "
        "client in this process, or with --url to a running server that uses this installation's database. "
        f"Simulated participants' PROLIFIC_PID starts with {PID_PREFIX}; their ratings count in the study's results "
        "until you remove them with --delete, which you must do before recruiting real participants (their drawings "
        "are never exported)."
    )

    def add_arguments(self, parser):
        add_study_argument(parser)
        run_or_delete = parser.add_mutually_exclusive_group(required=True)
        run_or_delete.add_argument("--n", type=positive, help="how many participants to simulate")
        run_or_delete.add_argument(
            "--delete", action="store_true",
            help=f"instead of simulating, delete the study's simulated participants (PROLIFIC_PID starting with "
                 f"{PID_PREFIX}) with their assignments and ratings: after the dry run, before recruiting. "
                 "Real participants are kept")
        parser.add_argument("--policy", choices=sorted(POLICIES), default="random",
                            help="how they grade: random (any grade, attention checks too, like an "
                                 "inattentive participant); always-real (every sketch Real, attention checks "
                                 "Fake); oracle (the truth: real sketches Real, generated sketches and "
                                 "attention checks Fake). Default: random")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the random grades and of the simulated response times (default 0)")
        parser.add_argument("--url", type=root_url, metavar="URL",
                            help="root of a running server to send the requests to, e.g. http://127.0.0.1:8000 "
                                 "(its ALLOWED_HOSTS must accept the host); default: Django's test client")

    def handle(self, *args, **opts):
        if opts["delete"]:
            self.delete(existing_study(opts["study"]))
            return
        study = self.open_study(opts["study"])
        transport = ServerTransport(opts["url"]) if opts["url"] else TestClientTransport()
        simulation = Simulation(study, opts["policy"], opts["seed"], transport)
        try:
            summary = simulation.run(opts["n"])
        except SimulationError as error:
            raise CommandError(str(error)) from None
        except OSError as error:  # URLError included: refused, unknown host, timed out
            if not opts["url"]:
                raise
            raise CommandError(f"Could not reach {opts['url']}: {getattr(error, 'reason', error)}") from None
        lines = [
            f"Simulated {summary.participants} participants on study {study.slug} through {transport.label} "
            f"(policy {opts['policy']}, seed {opts['seed']}).",
            f"  Finished: {summary.finished} of {summary.participants}",
            f"  Ratings stored: {summary.ratings} (attention checks among them: {summary.attention_checks})",
            f"  Attention checks passed: {summary.attention_passed} of {summary.attention_checks}",
        ]
        if study.asks_for_drawings:
            lines.append(f"  Drawings stored: {summary.drawings} (export_drawings leaves them out)")
        lines.append(f"Their PROLIFIC_PID starts with {PID_PREFIX}: remove them with --delete before recruiting.")
        self.stdout.write("\n".join(lines))

    def delete(self, study):
        participants, ratings = delete_simulated(study)
        self.stdout.write(
            f"Deleted {participants} simulated participants of study {study.slug} and their {ratings} ratings.")

    @staticmethod
    def open_study(slug):
        """The study, if participants can take it now."""
        study = existing_study(slug)
        if not study.is_open:
            raise CommandError(f"Study {slug} is closed; open it in the admin to dry-run it.")
        if study.items_per_participant and not study.stimuli.exists():
            raise CommandError(f"Study {slug} has no stimuli yet; make them with generate_samples.")
        return study
