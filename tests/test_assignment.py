"""The sequence a participant gets when they start: real and generated in proportion to the
study's stimuli (half and half when it has as many), spread over categories and conditions, least-assigned stimuli first, attention checks mixed in, random
order fixed in the database."""

from collections import Counter

from django.utils import timezone

from ratings.models import Participant


def sequence(study, token=None):
    participant = Participant.objects.create(study=study, consented=timezone.now(),
                                             **({"token": token} if token else {}))
    participant.assign()
    return [a.stimulus for a in participant.assignments.select_related("stimulus")]


def cells(stimuli):
    return Counter((s.source, s.category, s.condition_id) for s in stimuli if s.source != "attention")


def test_half_real_half_generated_spread_evenly_over_categories(make_study):
    study = make_study(items_per_participant=8, attention=2)
    items = sequence(study)
    assert Counter(s.source for s in items) == {"real": 4, "generated": 4, "attention": 2}
    assert set(cells(items).values()) == {2} and len(cells(items)) == 4
    assert len(set(items)) == len(items)


def test_generated_sketches_are_spread_over_conditions_too(make_study):
    study = make_study(items_per_participant=8, real=8, temperatures=(0.3, 0.8), attention=0)
    items = sequence(study)
    generated = [s for s in items if s.source == "generated"]
    assert len(generated) == 4
    assert Counter((s.condition.temperature, s.category) for s in generated) == {
        (0.3, "circle"): 1, (0.3, "square"): 1, (0.8, "circle"): 1, (0.8, "square"): 1}


def test_an_odd_count_differs_by_one_between_real_and_generated(make_study):
    study = make_study(items_per_participant=5, attention=0)
    counts = Counter(s.source for s in sequence(study))
    assert sorted(counts.values()) == [2, 3]


def test_real_and_generated_in_proportion_to_the_studys_stimuli(make_study):
    study = make_study(items_per_participant=6, real=4, generated=2, attention=0)  # 8 real, 4 generated
    items = sequence(study, "first")
    assert Counter(s.source for s in items) == {"real": 4, "generated": 2}
    assert set(cells(items).values()) == {2, 1} and len(cells(items)) == 4
    study.items_per_participant = 20
    study.save()
    assert Counter(s.source for s in sequence(study, "second")) == {"real": 8, "generated": 4}  # everything


def test_every_stimulus_is_shown_equally_often_whatever_its_source(make_study):
    """Two conditions make twice as many generated as real stimuli: were participants given half
    and half, each real sketch would be shown twice as often, and having seen an image before
    would say it is real."""
    study = make_study(items_per_participant=6, real=2, generated=2, temperatures=(0.3, 0.8), attention=0)
    for n in range(6):
        assert Counter(s.source for s in sequence(study, f"token-{n}")) == {"real": 2, "generated": 4}
    shown = Counter(a.stimulus.source for p in study.participants.all() for a in p.assignments.all())
    per_stimulus = Counter(a.stimulus_id for p in study.participants.all() for a in p.assignments.all())
    assert len(per_stimulus) == 12 and set(per_stimulus.values()) == {3}, shown


def test_the_least_assigned_stimuli_come_first(make_study):
    study = make_study(items_per_participant=4, real=4, generated=4, attention=0)
    for _ in range(4):
        sequence(study)
    per_stimulus = Counter(a.stimulus_id for p in study.participants.all() for a in p.assignments.all())
    assert len(per_stimulus) == 16 and set(per_stimulus.values()) == {1}
    sequence(study)
    assert sorted(Counter(a.stimulus_id for p in study.participants.all()
                          for a in p.assignments.all()).values()) == [1] * 12 + [2] * 4


def as_reconstructions_of_the_same_drawings(study):
    """Make the generated stimuli conditional samples: sample i of every condition encodes test
    drawing 100 + i, as generate_samples --mode conditional does for two temperatures."""
    for stimulus in study.stimuli.filter(source="generated"):
        stimulus.dataset_file, stimulus.dataset_split = f"{stimulus.category}.npz", "test"
        stimulus.dataset_index = 100 + stimulus.sample_index
        stimulus.save()


def test_no_participant_sees_two_sketches_made_from_one_drawing(make_study):
    study = make_study(items_per_participant=8, real=8, generated=4, temperatures=(0.3, 0.8), attention=0)
    as_reconstructions_of_the_same_drawings(study)
    for n in range(8):
        items = sequence(study, f"token-{n}")
        drawings = [(s.category, s.dataset_index) for s in items]
        assert len(set(drawings)) == len(drawings) == 8
        assert Counter(s.source for s in items) == {"real": 4, "generated": 4}


def test_a_cell_gives_fewer_rather_than_a_second_sketch_of_one_drawing(make_study):
    study = make_study(items_per_participant=8, real=2, generated=1, temperatures=(0.3, 0.8), attention=0)
    as_reconstructions_of_the_same_drawings(study)
    generated = [s for s in sequence(study) if s.source == "generated"]
    assert sorted(s.category for s in generated) == ["circle", "square"]


def test_attention_checks_are_mixed_in_with_the_configured_count(make_study):
    study = make_study(items_per_participant=6, attention=3)
    for token in ("first", "second", "third", "fourth"):
        items = sequence(study, token)
        checks = [position for position, s in enumerate(items, start=1) if s.source == "attention"]
        assert len(checks) == 3 and len({items[p - 1] for p in checks}) == 3
        assert 1 not in checks and len(items) == 6 + 3


def test_fewer_attention_checks_than_the_study_has(make_study):
    study = make_study(items_per_participant=4, attention=3)
    study.attention_checks = 1
    study.save()
    assert Counter(s.source for s in sequence(study))["attention"] == 1


def test_the_order_is_shuffled_per_participant(make_study):
    study = make_study(items_per_participant=8, attention=2)
    orders = [tuple(s.source for s in sequence(study, f"token-{n}")) for n in range(6)]
    assert len(set(orders)) > 1
    assert all(order != tuple(sorted(order)) for order in orders)


def test_assigning_twice_changes_nothing(make_study):
    study = make_study(items_per_participant=4, attention=1)
    participant = Participant.objects.create(study=study)
    participant.assign()
    first = list(participant.assignments.values_list("position", "stimulus"))
    participant.assign()
    assert list(participant.assignments.values_list("position", "stimulus")) == first


def test_a_study_without_stimuli_assigns_nothing(make_study):
    study = make_study(real=0, generated=0, attention=0)
    assert sequence(study) == []


def test_in_a_study_that_asks_for_drawings_first_no_one_grades_their_own(client, make_study):
    """A study whose stimuli include drawings made in its own drawing task (exported and made into
    stimuli while people were still drawing): each participant's own drawings, and conditional
    samples made from them, are left out of their sequence; everyone else's are shown."""
    from django.test import Client

    from ratings.models import Stimulus
    from tests.participant_steps import draw_all, url

    study = make_study(categories=("circle",), items_per_participant=100, real=2, generated=2, attention=0,
                       drawings_per_participant=2, drawing_categories="circle")
    drawer, other = draw_all(client, study), draw_all(Client(), study)
    template = study.stimuli.filter(source="real").first()
    for drawing in [*drawer.prompts.all(), *other.prompts.all()]:
        for source in ("real", "generated"):
            Stimulus.create_with_image(template.png, study=study, category="circle", source=source,
                                       condition=study.conditions.get() if source == "generated" else None,
                                       dataset_file="circle.npz", dataset_key=drawing.drawing.key_id)
    client.post(url("instructions", study))
    shown = {a.stimulus.dataset_key for a in drawer.assignments.select_related("stimulus")}
    own = {p.drawing.key_id for p in drawer.prompts.all()}
    others = {p.drawing.key_id for p in other.prompts.all()}
    assert not shown & own and others <= shown
    assert drawer.assignments.count() == 2 + 2 + 2 * 2  # the fixture's stimuli and the other's
