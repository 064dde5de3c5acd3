"""Assignments no longer have an image address (trial pages carry their sketch). The column stays,
nullable, for one update: workers of the version before still write it until a graceful reload
replaces them (docs/deployment.md). A later migration drops it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0009_stimulus_images_in_the_database'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterField(
                    model_name='assignment',
                    name='image_key',
                    field=models.CharField(max_length=32, null=True, unique=True, editable=False),
                ),
            ],
            state_operations=[
                migrations.RemoveField(model_name='assignment', name='image_key'),
            ],
        ),
    ]
