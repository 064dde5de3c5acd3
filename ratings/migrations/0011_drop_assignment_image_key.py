"""The image address column that 0010 kept, nullable, for one update goes: the version before this
one no longer writes it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0010_assignment_image_key_unused'),
    ]

    operations = [
        # Back into Django's state as the column is, so that RemoveField drops it on every database.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name='assignment',
                    name='image_key',
                    field=models.CharField(max_length=32, null=True, unique=True, editable=False),
                ),
            ],
        ),
        migrations.RemoveField(model_name='assignment', name='image_key'),
    ]
