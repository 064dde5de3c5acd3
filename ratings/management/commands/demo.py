"""demo: the quick start, from an empty folder to a served demo study."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from ratings.models import Stimulus, Study

PER_CATEGORY = 20  # real and as many generated sketches of each category
RESEARCHER = "researcher"


def holds_its_stimuli(study, sketches):
    """Whether the study has `sketches` real and as many generated sketches: then a restarted demo
    serves at once instead of loading the models and sampling again."""
    return (study.stimuli.filter(source=Stimulus.Source.REAL).count() >= sketches
            and study.stimuli.filter(source=Stimulus.Source.GENERATED).count() >= sketches)


def checkpoints_in(folder):
    """The checkpoints in `folder` and the categories they were trained on."""
    from generator.checkpoint import load_checkpoint

    paths = sorted(Path(folder).glob("*.pt"))
    if not paths:
        raise CommandError(f"no demo checkpoints in {folder}")
    return paths, list(dict.fromkeys(c for path in paths for c in load_checkpoint(path)["config"]["categories"]))


def browser_address(addr):
    """Where a browser on this machine finds a server listening at `addr` (host:port, or a port
    alone): a host of every address (0.0.0.0, its shorthand 0, [::]) is reached as localhost."""
    host, _, port = addr.rpartition(":")
    if host in ("", "0", "0.0.0.0", "[::]"):
        host = "localhost" if host else "127.0.0.1"
    return f"{host}:{port}"


class Command(BaseCommand):
    help = (
        "The quick start: apply migrations, fetch the demo categories' data if missing, make the demo study from the committed demo checkpoints "
        "(20 real and 20 generated sketches per category; a demo study made before is kept), create a researcher "
        "account if there is none, and serve the site, printing the participant and researcher URLs. "
        "--checkpoints fixtures/ten --study ten makes the ten-category study instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--checkpoints", default=None, metavar="FOLDER",
                            help="the folder of checkpoints, one or more per category (default: the demo's, "
                                 "fixtures/checkpoints; fixtures/ten holds the ten categories' models)")
        parser.add_argument("--study", default="demo", help="the study's slug (default demo)")
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where to serve (default 127.0.0.1:8000)")
        parser.add_argument("--no-server", action="store_true", help="set everything up, then stop")

    def handle(self, *args, **opts):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)  # the admin's styles, served by WhiteNoise
        self.stdout.write(f"Database ready: {settings.DATABASES['default']['NAME']}")
        paths, categories = checkpoints_in(opts["checkpoints"] or settings.DEMO_CHECKPOINT_DIR)
        sketches = PER_CATEGORY * len(categories)
        study = Study.objects.filter(slug=opts["study"]).first()
        if study is not None and holds_its_stimuli(study, sketches):
            self.stdout.write(f"The {study.slug} study is made already ({sketches} real and {sketches} generated "
                              "sketches): not made again. Delete it in the admin to make it afresh.")
        else:
            call_command("fetch_sketches", categories=",".join(categories), stdout=self.stdout)
            call_command("generate_samples", study=opts["study"], checkpoint=[str(p) for p in paths], real=sketches,
                         generated=sketches, stdout=self.stdout)
            study = Study.objects.get(slug=opts["study"])
        password = self.ensure_researcher()
        base = f"http://{browser_address(opts['addr'])}"
        self.stdout.write("")
        self.stdout.write(f"Participants: {base}{study.get_absolute_url()}")
        self.stdout.write(f"Researcher:   {base}{reverse('results:study', args=[study.slug])}")
        if password:
            self.stdout.write(f"              log in as '{RESEARCHER}' with password {password} (shown once; "
                              f"change it in the admin)")
        self.stdout.write(f"Pilot it:     python manage.py simulate_participants --study {study.slug} --n 20 "
                          f"(remove the simulated data with --delete)")
        if not opts["no_server"]:
            call_command("runserver", opts["addr"], use_reloader=False)

    def ensure_researcher(self):
        """A staff account for the results page, made once; returns its new password or None."""
        User = get_user_model()
        if User.objects.filter(is_staff=True).exists():
            return None
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser(RESEARCHER, password=password)
        return password
