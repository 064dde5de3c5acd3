"""Migrations that a graceful reload crosses: workers of the version before run on the new schema
until they are replaced (docs/deployment.md)."""

from django.db import connection

from ratings.models import Assignment


def test_assignments_are_written_by_both_versions_while_the_image_key_column_remains(study, participant):
    stimuli = list(study.stimuli.exclude(assignments__participant=participant)[:3])
    # The version before writes an image address into every assignment it makes...
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO ratings_assignment (participant_id, stimulus_id, position, image_key) "
                       "VALUES (%s, %s, %s, %s)", [participant.pk, stimuli[0].pk, 1000, "k" * 32])
    # ...this one none, and as many of them as it likes.
    Assignment.objects.create(participant=participant, stimulus=stimuli[1], position=1001)
    Assignment.objects.create(participant=participant, stimulus=stimuli[2], position=1002)
    with connection.cursor() as cursor:
        cursor.execute("SELECT position, image_key FROM ratings_assignment WHERE position >= 1000 ORDER BY position")
        assert cursor.fetchall() == [(1000, "k" * 32), (1001, None), (1002, None)]
