"""Migrations that a graceful reload crosses: workers of the version before run on the new schema
until they are replaced (docs/deployment.md)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ratings.models import Assignment


def columns(table):
    with connection.cursor() as cursor:
        return [column.name for column in connection.introspection.get_table_description(cursor, table)]


def migrate(*targets):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


def test_the_image_address_column_is_gone_and_assignments_are_still_written(study, participant):
    assert "image_key" not in columns("ratings_assignment")
    stimulus = study.stimuli.exclude(assignments__participant=participant).first()
    Assignment.objects.create(participant=participant, stimulus=stimulus, position=1000)
    assert participant.assignments.filter(position=1000, stimulus=stimulus).exists()


@pytest.mark.django_db(transaction=True)
def test_0011_drops_the_column_that_0010_kept_and_a_reverse_puts_it_back():
    # 0010 kept the column, nullable, for the workers of the version before; 0011 drops it.
    try:
        migrate(("ratings", "0010_assignment_image_key_unused"))
        assert "image_key" in columns("ratings_assignment")
    finally:
        migrate()
    assert "image_key" not in columns("ratings_assignment")
