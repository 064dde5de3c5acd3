"""Migrations that a graceful reload crosses: workers of the version before run on the new schema
until they are replaced (docs/deployment.md)."""

from django.db import connection

from ratings.models import Assignment


def columns(table):
    with connection.cursor() as cursor:
        return [column.name for column in connection.introspection.get_table_description(cursor, table)]


def test_the_image_address_column_is_gone_and_assignments_are_still_written(study, participant):
    # The version before no longer wrote the column that 0010 kept for the one before it.
    assert "image_key" not in columns("ratings_assignment")
    assert {"participant_id", "stimulus_id", "position"} <= set(columns("ratings_assignment"))
    stimulus = study.stimuli.exclude(assignments__participant=participant).first()
    Assignment.objects.create(participant=participant, stimulus=stimulus, position=1000)
    assert participant.assignments.filter(position=1000, stimulus=stimulus).exists()
