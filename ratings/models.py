"""The rating study: studies, their stimuli (real and generated sketches, attention checks),
participants, what each participant is shown, and their ratings.

Nothing a participant can see (URLs, file names, image bytes) is derived from a stimulus's source
or category: a participant's sketches come inside their trial pages, staff's images are addressed by
the stimulus's random `public_id`, and provenance stays in the database.
"""

import base64
import contextlib
import math
import random
import secrets
import time

from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone


def random_id(nbytes):
    """A URL-safe random id that does not start with '-': spreadsheets read such a cell of an
    exported CSV as a formula and show an error instead of the id."""
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token


def new_public_id():
    return random_id(12)


def new_participant_token():
    return random_id(18)


def new_consent_token():
    return random_id(18)


# No letters or digits that read alike (0 O, 1 I L) and no U (no words by accident).
RESUME_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
RESUME_CODE_LENGTH = 8  # 30**8 codes: about 39 bits


def new_resume_code():
    code = "".join(secrets.choice(RESUME_CODE_ALPHABET) for _ in range(RESUME_CODE_LENGTH))
    return f"{code[:4]}-{code[4:]}"


def normalised_resume_code(text):
    """A code as typed (any case, with or without the dash or spaces) as it is stored."""
    code = "".join(c for c in text.upper() if c.isalnum())
    return f"{code[:4]}-{code[4:]}" if len(code) == RESUME_CODE_LENGTH else ""


DEFAULT_INSTRUCTIONS = (
    "You will see hand-drawn sketches, one at a time. Some were drawn by people in an online "
    "drawing game, others may not have been. For each sketch, tell us whether you think it was "
    "drawn by a person:\n\n"
    "Real: you are confident a person drew it.\n"
    "Possibly real: it might have been drawn by a person, but you are not sure.\n"
    "Fake: you are confident a person did not draw it.\n\n"
    "There are no trick questions and no time limit; go with your first impression. "
    "A few images are checks that you are paying attention: if an image shows only a "
    "meaningless scribble, grade it Fake."
)

# "{minutes}" in a consent text is replaced by the study's expected duration (Study.expected_minutes).
MINUTES_PLACEHOLDER = "{minutes}"
DEFAULT_CONSENT = (
    "This is a research study about how people perceive sketches. Taking part means grading a "
    "series of simple drawings, which takes about {minutes} minutes. We record your answers, how long "
    "each answer took, and the identifiers your recruitment platform passes to us; nothing else "
    "about you. Your answers are used for research only and are reported in aggregate. Taking "
    "part is voluntary and you may stop at any time by closing this page."
)


# The expected duration before anyone has finished: time to read the consent and instructions,
# and to grade one item (the trial page shows one sketch and three buttons).
READING_SECONDS = 60
SECONDS_PER_ITEM = 5
DEFAULT_DRAWING_SECONDS = 20  # Quick, Draw!'s time limit
MIN_FINISHERS_TIMED = 3


class Study(models.Model):
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200, default="Sketch study")
    instructions = models.TextField(default=DEFAULT_INSTRUCTIONS)
    consent_text = models.TextField(
        default=DEFAULT_CONSENT, help_text=f"{MINUTES_PLACEHOLDER} is replaced by the expected duration in minutes: "
                                           "estimated from the items per participant, then measured once "
                                           f"{MIN_FINISHERS_TIMED} participants have finished.")
    items_per_participant = models.PositiveIntegerField(
        default=40, help_text="Sketches each participant grades, attention checks not counted; 0 for a study "
                              "that only asks for drawings.")
    # The drawing task (drawing.py), before the grading.
    drawings_per_participant = models.PositiveIntegerField(
        default=0, help_text="Prompts each participant draws, one per page, before grading; 0: no drawing task.")
    drawing_categories = models.CharField(
        max_length=1000, blank=True,
        validators=[RegexValidator(r"^[\w -]+(,[\w -]+)*$", "Categories, comma-separated.")],
        help_text="What participants are asked to draw, comma-separated (e.g. pig,alarm_clock); the names the "
                  "exported files get.")
    drawing_seconds = models.PositiveIntegerField(
        default=DEFAULT_DRAWING_SECONDS, help_text="Time limit per drawing in seconds; 0: no limit.")
    attention_checks = models.PositiveIntegerField(
        default=3, help_text="Catch trials (meaningless scribbles, drawn for this study) mixed into each session.")
    is_open = models.BooleanField(
        default=True, help_text="Closed studies take no new participants; those who already consented can finish.")
    recruitment_id_required = models.BooleanField(
        default=False, help_text="Only people who come through the recruitment site's link (with its PROLIFIC_PID) can "
                                 "take part; the bare study address gets a page that says so.")
    completion_code = models.CharField(max_length=100, blank=True, help_text="Shown on the finish page (e.g. Prolific's code).")
    completion_url = models.URLField(blank=True, help_text="If set, the finish page links participants here.")
    target_participants = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many counted participants the study aims for (plan_study estimates "
                                         "it); the results page counts ratings against it.")
    target_half_width = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(49.9)],
        help_text="The headline's 95% interval should be this many percentage points either side of its share; "
                  "the results page estimates how many participants that takes.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created"]

    def __str__(self):
        return self.slug

    def get_absolute_url(self):
        return reverse("ratings:landing", args=[self.slug])

    def clean(self):
        if self.drawings_per_participant and not self.drawing_category_list:
            raise ValidationError({"drawing_categories": "Name what participants should draw."})

    @property
    def drawing_category_list(self):
        return list(dict.fromkeys(c.strip() for c in self.drawing_categories.split(",") if c.strip()))

    @property
    def asks_for_drawings(self):
        return bool(self.drawings_per_participant and self.drawing_category_list)

    # Prolific's placeholders, filled in for each participant by the recruitment site.
    RECRUITMENT_QUERY = "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"

    def recruitment_link(self, request):
        """The study's address with the recruitment site's placeholders, to give that site."""
        return request.build_absolute_uri(self.get_absolute_url()) + self.RECRUITMENT_QUERY

    UNCREDITED_WARNING = ("Neither a completion code nor a completion URL is set: participants who come through "
                          "the recruitment link cannot be credited on the recruitment site. Set one in the admin.")

    @property
    def uncredited_warning(self):
        """UNCREDITED_WARNING where participants come (or must come) through a recruitment link and
        the finish page has nothing to credit them by; else ""."""
        if self.completion_code or self.completion_url:
            return ""
        recruited = self.participants.exclude(prolific_pid="").exclude(
            prolific_pid__startswith=Participant.SIMULATED_PID_PREFIX).exists()
        return self.UNCREDITED_WARNING if self.recruitment_id_required or recruited else ""

    def expected_minutes(self):
        """(minutes, how they were found): the median time from consent to finish of the participants
        who finished (simulated ones aside) once there are MIN_FINISHERS_TIMED of them, else an
        estimate from the number of items; rounded up, at least 1."""
        durations = sorted(
            (finished - consented).total_seconds()
            for consented, finished in self.participants.filter(finished__isnull=False, consented__isnull=False)
            .exclude(prolific_pid__startswith=Participant.SIMULATED_PID_PREFIX).values_list("consented", "finished"))
        if len(durations) >= MIN_FINISHERS_TIMED:
            middle = len(durations) // 2
            median = durations[middle] if len(durations) % 2 else (durations[middle - 1] + durations[middle]) / 2
            return max(1, math.ceil(median / 60)), f"the median of {len(durations)} participants who finished"
        items = self.items_per_participant + self.attention_checks
        seconds = READING_SECONDS + items * SECONDS_PER_ITEM
        drawings = ""
        if self.asks_for_drawings:
            # Each drawing takes its time limit at most; without one, as long as the game's.
            per_drawing = self.drawing_seconds or DEFAULT_DRAWING_SECONDS
            seconds += self.drawings_per_participant * per_drawing
            drawings = f", {self.drawings_per_participant} drawings at {per_drawing} s each"
        return (max(1, math.ceil(seconds / 60)),
                f"estimated: {items} items at {SECONDS_PER_ITEM} s each{drawings} and {READING_SECONDS // 60} minute "
                "to read")

    @property
    def consent_text_shown(self):
        """The consent text as participants read it, with the expected duration filled in."""
        return self.consent_text.replace(MINUTES_PLACEHOLDER, str(self.expected_minutes()[0]))

    def enroll(self, consent_token="", prolific_pid="", external_study_id="", external_session_id=""):
        """A consented participant. A consent form sent again (a double click posts it twice, the
        second post before the first one's cookie is saved) gets the participant it made the first
        time. A recruitment id that has consented before makes a new attempt under that id, which
        the results exclude as a duplicate (Participant.attempt): knowing someone's id never lets
        anyone answer as them."""
        for _ in range(10):
            earlier = self.participants.filter(consent_token=consent_token).first() if consent_token else None
            if earlier:
                return earlier
            attempt = 1
            if prolific_pid:
                attempt += self.participants.filter(prolific_pid=prolific_pid).aggregate(n=Max("attempt"))["n"] or 0
            try:
                with transaction.atomic():
                    return self.participants.create(
                        consent_token=consent_token, prolific_pid=prolific_pid, attempt=attempt,
                        external_study_id=external_study_id, external_session_id=external_session_id,
                        consented=timezone.now())
            except IntegrityError:
                pass  # a twin post, or another attempt under this id, committed first: look again
        raise RuntimeError(f"Could not enroll recruitment id {prolific_pid!r} in study {self.slug}")

    def resume_by_code(self, prolific_pid, code):
        """The participant with this recruitment id whose resume code this is, or None. Every wrong
        code counts against the id's attempts; after MAX_RESUME_FAILURES, none resumes by code (so
        a code cannot be guessed), though each still resumes on their own browser."""
        attempts = list(self.participants.filter(prolific_pid=prolific_pid,
                                                 resume_failures__lt=Participant.MAX_RESUME_FAILURES))
        code = normalised_resume_code(code)
        for participant in attempts:
            if code and secrets.compare_digest(participant.resume_code, code):
                return participant
        self.participants.filter(prolific_pid=prolific_pid).update(resume_failures=models.F("resume_failures") + 1)
        return None

    def first_attempt(self, prolific_pid):
        """The participant who first consented under this recruitment id, or None."""
        return self.participants.filter(prolific_pid=prolific_pid).order_by("attempt").first() if prolific_pid else None

    def choose_stimuli(self, count, rng, withheld_keys=()):
        """Up to `count` real and generated stimuli for one participant, none made from a drawing
        whose key is in `withheld_keys` (the participant's own: Participant.own_drawing_keys).

        Real and generated in proportion to how many of each the study has (half and half when it
        has as many), so that every stimulus is shown about equally often whatever its source: if
        real ones were shown more often, having seen an image before (or hearing of it from
        another participant) would tell it is real. The real part is spread evenly over
        categories, the generated part evenly over (condition, category) cells. Within a cell the
        least-assigned stimuli come first (assignments, not ratings, so participants who start at
        the same time spread out; then fewer ratings; then chance).

        No two of them come from one test drawing: conditional samples of several conditions (and a
        condition asked for more samples than the test split holds) encode the same drawings, and
        two reconstructions of one drawing side by side would give both away as generated. A cell
        whose remaining stimuli all share a drawing with ones already chosen gives fewer.
        """
        stimuli = list(self.stimuli.exclude(source=Stimulus.Source.ATTENTION).exclude(dataset_key__in=withheld_keys)
                       .order_by("pk"))
        usage = _usage_keys(stimuli, rng)
        real, generated = {}, {}
        for stimulus in stimuli:
            if stimulus.source == Stimulus.Source.REAL:
                real.setdefault(stimulus.category, []).append(stimulus)
            else:
                generated.setdefault((stimulus.condition_id, stimulus.category), []).append(stimulus)
        real_cells = [sorted(cell, key=usage.get) for _, cell in sorted(real.items())]
        generated_cells = [sorted(cell, key=usage.get) for _, cell in sorted(generated.items())]

        n_real, n_generated = sum(map(len, real_cells)), sum(map(len, generated_cells))
        count = min(count, n_real + n_generated)
        # count * n_real / total real ones, the fraction rounded up with that probability.
        real_share, remainder = divmod(count * n_real, (n_real + n_generated) or 1)
        real_share += rng.random() * (n_real + n_generated) < remainder
        real_counts = spread(real_share, [len(c) for c in real_cells], rng)
        generated_counts = spread(count - real_share, [len(c) for c in generated_cells], rng)
        cells = real_cells + generated_cells
        chosen, drawings = [], set()
        for cell, n in zip(cells, real_counts + generated_counts):
            taken = 0
            for stimulus in cell:
                key = stimulus.drawing_key
                if taken == n:
                    break
                if key is not None:
                    if key in drawings:
                        continue
                    drawings.add(key)
                chosen.append(stimulus)
                taken += 1
        return chosen

    def choose_attention_checks(self, rng):
        """`attention_checks` catch trials (fewer if fewer exist), least-assigned first."""
        checks = list(self.stimuli.filter(source=Stimulus.Source.ATTENTION).order_by("pk"))
        usage = _usage_keys(checks, rng)
        return sorted(checks, key=usage.get)[:self.attention_checks]


def spread(total, sizes, rng):
    """Split `total` over cells holding `sizes` items: counts differ by at most one and no cell
    gives more than it holds, so the counts add up to less than `total` when cells run short.
    Which cells get the remainder is left to chance."""
    if not sizes:
        return []
    level = min(total // len(sizes), min(sizes))
    counts = [level] * len(sizes)
    roomy = [i for i, size in enumerate(sizes) if size > level]
    for i in rng.sample(roomy, min(total - level * len(sizes), len(roomy))):
        counts[i] += 1
    return counts


def _usage_keys(stimuli, rng):
    """Sort keys per stimulus: (times assigned, times rated, a random tie-break)."""
    pks = [s.pk for s in stimuli]
    assigned = dict(Assignment.objects.filter(stimulus__in=pks).values_list("stimulus").annotate(n=Count("pk")))
    rated = dict(Rating.objects.filter(stimulus__in=pks).values_list("stimulus").annotate(n=Count("pk")))
    return {s: (assigned.get(s.pk, 0), rated.get(s.pk, 0), rng.random()) for s in stimuli}


class Condition(models.Model):
    """One way of generating sketches in a study: checkpoint, temperature (and its rule), mode."""

    class Mode(models.TextChoices):
        UNCONDITIONAL = "unconditional"
        CONDITIONAL = "conditional"

    class TemperatureRule(models.TextChoices):
        # generator.sample.TEMPERATURE_RULES (the web processes do not import torch).
        PAPER = "paper", "paper (sigma x sqrt(tau))"
        MAGENTA = "magenta", "magenta (sigma x tau)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    checkpoint_sha256 = models.CharField(max_length=64)
    checkpoint_name = models.CharField(max_length=300, help_text="File name when the stimuli were made.")
    temperature = models.FloatField()
    temperature_rule = models.CharField(max_length=10, choices=TemperatureRule.choices, default=TemperatureRule.PAPER,
                                        help_text="How the temperature narrows each normal of the mixture.")
    mode = models.CharField(max_length=20, choices=Mode.choices)
    reject_degenerate = models.BooleanField(default=False)
    rejected = models.JSONField(default=dict, blank=True, help_text="Samples rejected per category.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "checkpoint_sha256", "temperature", "temperature_rule", "mode",
                                            "reject_degenerate"], name="unique_condition"),
        ]

    def __str__(self):
        return self.label()

    def label(self):
        """How the admin, the results, the exports, the charts and generate_samples name this condition."""
        rule = "" if self.temperature_rule == self.TemperatureRule.PAPER else f" ({self.temperature_rule} rule)"
        label = f"{self.checkpoint_name} ({self.checkpoint_sha256[:8]}) t={self.temperature:g}{rule} {self.mode}"
        return label + (" rejecting degenerate" if self.reject_degenerate else "")


class Stimulus(models.Model):
    class Source(models.TextChoices):
        REAL = "real"
        GENERATED = "generated"
        ATTENTION = "attention"  # catch trial, excluded from the metric

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="stimuli")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    category = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices)
    condition = models.ForeignKey(Condition, null=True, blank=True, on_delete=models.CASCADE, related_name="stimuli")
    # Provenance, server-side only. Real: dataset file, split and index. Generated: the
    # condition, the seed and the sample's index in its stream, and for conditional mode the
    # encoded drawing's index. Attention: the kind of catch trial in `dataset_file`, and the seed
    # it was drawn from.
    dataset_file = models.CharField(max_length=300, blank=True)
    dataset_split = models.CharField(max_length=10, blank=True)
    dataset_index = models.IntegerField(null=True, blank=True)
    dataset_key = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text="The key_id of the drawing shown or encoded, where its file names it.")
    seed = models.BigIntegerField(null=True, blank=True)
    sample_index = models.IntegerField(null=True, blank=True)
    ended = models.BooleanField(null=True, blank=True, help_text="Generated: ended by itself before the length limit.")
    num_points = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "stimuli"
        constraints = [
            models.UniqueConstraint(fields=["study", "category", "dataset_file", "dataset_index"],
                                    condition=models.Q(source="real"), name="unique_real_stimulus"),
            models.UniqueConstraint(fields=["condition", "category", "sample_index"],
                                    condition=models.Q(source="generated"), name="unique_generated_stimulus"),
            models.UniqueConstraint(fields=["study", "dataset_file"],
                                    condition=models.Q(source="attention"), name="unique_attention_stimulus"),
        ]

    def __str__(self):
        return f"{self.public_id} ({self.source} {self.category})"

    @property
    def drawing_key(self):
        """The test drawing this stimulus shows or reconstructs, or None (unconditional samples)."""
        if self.dataset_index is None or self.source == self.Source.ATTENTION:
            return None
        return (self.category, self.dataset_file, self.dataset_index)

    @classmethod
    def create_with_image(cls, png, **fields):
        """A new stimulus with its PNG, stored together: there is never one without the other."""
        with transaction.atomic():
            stimulus = cls.objects.create(**fields)
            StimulusImage.objects.create(stimulus=stimulus, png=png)
        return stimulus

    def get_absolute_url(self):
        """The image's address for staff (participants get theirs inside their trial pages)."""
        return reverse("results:image", args=[self.public_id])

    @property
    def png(self):
        """The image's bytes, or None if it has none (StimulusImage)."""
        png = StimulusImage.objects.filter(stimulus=self).values_list("png", flat=True).first()
        return bytes(png) if png is not None else None


PNG_DATA_URL = "data:image/png;base64,"


def png_data_url(png):
    """A PNG as a data: URL, for a page that carries its images itself."""
    return PNG_DATA_URL + base64.b64encode(png).decode("ascii")


class StimulusImage(models.Model):
    """A stimulus's PNG, in the database: every web host that shares the database serves it, and
    backing up the database backs up the study. Apart from Stimulus, so that listing stimuli never
    loads their images."""

    stimulus = models.OneToOneField(Stimulus, on_delete=models.CASCADE, primary_key=True, related_name="image")
    png = models.BinaryField()

    def __str__(self):
        return f"image of {self.stimulus_id}"


class Participant(models.Model):
    # A dry run's participants (simulate_participants) have recruitment ids that start with this.
    SIMULATED_PID_PREFIX = "SIMULATED-"
    MAX_RESUME_FAILURES = 10

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=40, unique=True, default=new_participant_token, editable=False)
    prolific_pid = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="1 for the first to consent under a recruitment id; 2, 3, ... for later attempts from "
                             "other browsers with the same id (a duplicate id: excluded from the results by default).")
    resume_code = models.CharField(
        max_length=9, default=new_resume_code, editable=False,
        help_text="Shown to the participant at the start: with it, they continue on another browser.")
    resume_failures = models.PositiveSmallIntegerField(
        default=0, editable=False, help_text="Wrong resume codes entered for this recruitment id.")
    external_study_id = models.CharField(max_length=64, blank=True)
    external_session_id = models.CharField(max_length=64, blank=True)
    consent_token = models.CharField(
        max_length=40, blank=True, editable=False,
        help_text="The random id of the consent form this participant agreed on: the same form sent twice enrolls once.")
    consented = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True, help_text="When they pressed Start and got their items (or "
                                                                   "their prompts, in a study that asks for drawings).")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Attempts under one recruitment id are numbered 1, 2, ...: two consents at once cannot
            # both be the first.
            models.UniqueConstraint(fields=["study", "prolific_pid", "attempt"], condition=~models.Q(prolific_pid=""),
                                    name="one_participant_per_prolific_pid_attempt"),
            models.UniqueConstraint(fields=["study", "consent_token"], condition=~models.Q(consent_token=""),
                                    name="one_participant_per_consent_form"),
        ]

    def __str__(self):
        return self.token[:10]

    @property
    def duplicate_id(self):
        """A later attempt under a recruitment id someone had consented under already."""
        return self.attempt > 1

    def assign(self):
        """Fix this participant's sequence of items, once: balanced stimuli in a random order,
        with the attention checks at random positions after the first. The order is seeded
        from the token, so it can be recomputed from the database."""
        with transaction.atomic():
            # Lock the study: concurrent starts then count each other's assignments.
            study = Study.objects.select_for_update().get(pk=self.study_id)
            if self.assignments.exists():
                return
            rng = random.Random(self.token)
            items = study.choose_stimuli(study.items_per_participant, rng, self.own_drawing_keys())
            if not items:
                return
            rng.shuffle(items)
            for check in study.choose_attention_checks(rng):
                items.insert(rng.randint(1, len(items)), check)
            Assignment.objects.bulk_create(
                Assignment(participant=self, stimulus=stimulus, position=position)
                for position, stimulus in enumerate(items, start=1))
            self.mark_started()

    def mark_started(self):
        """They pressed Start: of the drawing task where the study has one, else of the grading."""
        if self.started is None:
            self.started = timezone.now()
            Participant.objects.filter(pk=self.pk, started__isnull=True).update(started=self.started)

    def own_drawing_keys(self):
        """The key_ids of every drawing this person made: here, and in any study under the same
        recruitment id. No stimulus made from one of them is shown to them."""
        same = Q(prompt__participant=self)
        if self.prolific_pid:
            same |= Q(prompt__participant__prolific_pid=self.prolific_pid)
        return Drawing.objects.filter(same).values("key_id")

    def drawing_pending(self):
        """The drawing task, which comes before the grading, is not done: a prompt has no drawing
        yet, or the study asks for drawings and none were given out before the grading began."""
        if self.prompts.exists():
            return self.prompts.filter(drawing__isnull=True).exists()
        return self.finished is None and self.study.asks_for_drawings and not self.assignments.exists()

    def next_assignment(self):
        """The first assignment not rated yet, or None (Assignment.next_unrated)."""
        return Assignment.next_unrated(participant_id=self.pk)

    def rate(self, position, grade, response_ms, served=None, next_up=None):
        """Store the grade of the item at `position`, which must be the next unrated one
        (`next_up`: Assignment.next_unrated, where the caller has just looked it up).

        Returns False, storing nothing, when that item has a rating already (a double click,
        a reload of a post, a second tab). Raises NotAssigned for a position the participant
        doesn't have (or a `served` token of another item) and OutOfOrder for one they haven't
        been shown yet. `served` is what Assignment.served_token said when the item's page was
        served: the rating keeps the time from then to now.
        """
        # Every item before the next unrated one is rated: one look-up tells "rated already" from
        # "not shown yet", leaving no gap between two checks for a concurrent twin post to commit in.
        next_up = next_up or self.next_assignment()
        if next_up is None:
            if position > self.assignments.count():
                raise NotAssigned(position)
            return False
        if position > next_up.total:
            raise NotAssigned(position)
        if position < next_up.position:
            return False
        if position > next_up.position:
            raise OutOfOrder(position)
        try:
            # Alone, the insert commits by itself (one round trip, not three); within a caller's
            # transaction, a savepoint keeps a duplicate from ending it.
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                Rating.objects.create(participant_id=self.pk, stimulus_id=next_up.stimulus_id, grade=grade,
                                      response_ms=response_ms, server_ms=next_up.served_interval(served),
                                      position=position)
        except IntegrityError:
            return False  # the same post, stored by a concurrent request
        if position == next_up.total:
            self.finish_if_done()
        return True

    def repeats_last_answer(self, position, grade):
        """Whether an answer that `rate` did not store repeats the last one stored (a double click, a
        reloaded post: nothing lost), rather than answering an item rated already from a page left
        behind (a second tab), which the participant should be told was not recorded."""
        last = self.ratings.order_by("-position").first()
        return last is not None and last.position == position and last.grade == grade

    def finish_if_done(self):
        """Finished: the drawing task done and every item rated; in a study without grading
        (items_per_participant 0), the drawing task done."""
        if self.finished is not None or self.drawing_pending():
            return
        if self.assignments.exists():
            done = self.next_assignment() is None
        else:
            done = self.study.items_per_participant == 0 and self.prompts.exists()
        if done:
            self.finished = timezone.now()
            Participant.objects.filter(pk=self.pk, finished__isnull=True).update(finished=self.finished)


class NotAssigned(Exception):
    """A post names an item the participant was not given."""


class OutOfOrder(Exception):
    """A post names an item the participant has not been shown yet."""


def now_ms():
    return int(time.time() * 1000)


class Assignment(models.Model):
    """One item of a participant's fixed, server-side sequence."""

    SERVED_SALT = "ratings.assignment.served"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="assignments")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="assignments")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "position"], name="unique_assignment_position"),
            models.UniqueConstraint(fields=["participant", "stimulus"], name="unique_assignment_stimulus"),
        ]

    # Every trial page and every answer starts here, so it is one plain query: built through the
    # ORM (an Exists, a Subquery, three joins), it cost five times the database's work in Python.
    # It brings the sketch's PNG, which the trial page carries in itself.
    NEXT_UNRATED_SQL = """
        SELECT a.id, a.participant_id, a.stimulus_id, a.position,
               (SELECT COUNT(*) FROM ratings_assignment n WHERE n.participant_id = a.participant_id) AS total,
               p.token, p.finished, s.id, s.slug, s.title, i.png
        FROM ratings_assignment a
        JOIN ratings_participant p ON p.id = a.participant_id
        JOIN ratings_study s ON s.id = p.study_id
        LEFT JOIN ratings_stimulusimage i ON i.stimulus_id = a.stimulus_id
        WHERE {participant}
          AND NOT EXISTS (SELECT 1 FROM ratings_rating r
                          WHERE r.participant_id = a.participant_id AND r.stimulus_id = a.stimulus_id)
        ORDER BY a.position
        LIMIT {limit}"""

    @classmethod
    def next_unrated(cls, participant_id=None, tokens=(), slug=None, with_following=False):
        """The first unrated assignment of a participant, given by id or by their tokens and study
        slug (a browser's cookie), with `total` (their number of items), `png` (its stimulus's
        image, None if it has none) and its participant and study (those fields only that the pages
        use; others load when asked for); None when all are rated or there is no such participant.
        `with_following`: the same query also brings the unrated one after it, as `following` (or
        None), which is the next one once this one is rated: an answer's page needs no second look-up."""
        if participant_id is not None:
            participant, params = "p.id = %s", [participant_id]
        elif tokens:
            participant = f"p.token IN ({', '.join(['%s'] * len(tokens))}) AND s.slug = %s"
            params = [*tokens, slug]
        else:
            return None
        with connection.cursor() as cursor:
            sql = cls.NEXT_UNRATED_SQL.format(participant=participant, limit=2 if with_following else 1)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return None
        assignment = cls._from_row(rows[0])
        if with_following:
            assignment.following = cls._from_row(rows[1]) if len(rows) > 1 else None
        return assignment

    @classmethod
    def _from_row(cls, row):
        pk, participant_pk, stimulus_pk, position, total, token, finished, study_pk, slug, title, png = row
        study = Study.from_db(connection.alias, ["id", "slug", "title"], [study_pk, slug, title])
        owner = Participant.from_db(connection.alias, ["id", "study_id", "token", "finished"],
                                    [participant_pk, study_pk, token, finished])
        owner.study = study
        assignment = cls.from_db(connection.alias, ["id", "participant_id", "stimulus_id", "position"],
                                 [pk, participant_pk, stimulus_pk, position])
        assignment.participant, assignment.total = owner, total
        assignment.png = bytes(png) if png is not None else None
        return assignment

    def image_data_url(self):
        """The sketch as a data: URL, or None when its image is missing (next_unrated's `png`). The
        page carries its sketch itself: no address to compare with another participant's, no second
        request, and every web host that shares the database shows it."""
        return png_data_url(self.png) if self.png is not None else None

    def served_token(self):
        """Signed on the trial page as it is served, and posted back with the answer."""
        return signing.Signer(salt=self.SERVED_SALT).sign(f"{self.pk}.{now_ms()}")

    @classmethod
    def read_served_token(cls, token):
        """(assignment pk, served at, in ms); raises signing.BadSignature for a token the server did not sign."""
        pk, served_at = signing.Signer(salt=cls.SERVED_SALT).unsign(token).split(".")
        return int(pk), int(served_at)

    def served_interval(self, served):
        """Milliseconds from this item's page being served (read_served_token) to now; None
        without a token, or where clocks of two hosts disagree by more than the interval."""
        if served is None:
            return None
        pk, served_at = served
        if pk != self.pk:
            raise NotAssigned(self.position)  # another item's page: not sent by the page shown
        interval = now_ms() - served_at
        return interval if interval >= 0 else None


class Rating(models.Model):
    # The trial page's buttons open this long after the sketch is on screen: no browser that ran
    # the page measures less.
    BUTTONS_OPEN_MS = 400
    # A browser's clock may round (some to 100 ms): its time can exceed the server's by that much.
    CLOCK_SLACK_MS = 100

    class Grade(models.TextChoices):
        """The answers, from most to least real, as the buttons show them."""

        REAL = "real", "Real"
        POSSIBLY_REAL = "possibly_real", "Possibly real"
        FAKE = "fake", "Fake"

        @property
        def score(self):
            """The grade as a number for per-sketch means and ordinal agreement: fake 0 up to real 2."""
            grades = list(type(self))
            return len(grades) - 1 - grades.index(self)

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="ratings")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="ratings")
    grade = models.CharField(max_length=16, choices=Grade.choices)
    # Null when the browser ran no JavaScript: the grade counts, but no time was measured.
    response_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From the image being shown to the answer, measured in the browser.")
    # The browser's figure can be anything a participant sends; this one is the server's own.
    server_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From the trial page being served to the answer arriving, measured by the "
                                         "server (null for a page served without its timestamp).")
    position = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "stimulus"], name="one_rating_per_participant_and_stimulus"),
        ]


# The drawing task's models live in drawing.py; importing them here registers them with the app.
from .drawing import Drawing, DrawingPrompt  # noqa: E402,F401
