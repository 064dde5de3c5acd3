"""One clear line, instead of a "no such table" traceback, when a command meets a database that
`migrate` has not set up (or cannot reach at all)."""

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor


def require_migrated_database(using=DEFAULT_DB_ALIAS):
    try:
        executor = MigrationExecutor(connections[using])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        raise CommandError(f"Cannot reach the database ({error}).") from None
    if plan:
        apps = ", ".join(sorted({migration.app_label for migration, _backwards in plan}))
        raise CommandError(f"The database is missing {len(plan)} migration(s) of {apps}: "
                           f"run `python manage.py migrate` first.")
