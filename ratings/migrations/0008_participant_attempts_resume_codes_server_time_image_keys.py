from django.db import migrations, models

import ratings.models


def give_each_row_its_own(apps, schema_editor):
    """Participants and assignments made before get a resume code and an image key of their own (a
    default would give every row the same one)."""
    Participant = apps.get_model("ratings", "Participant")
    Assignment = apps.get_model("ratings", "Assignment")
    for participant in Participant.objects.all().only("pk"):
        participant.resume_code = ratings.models.new_resume_code()
        participant.save(update_fields=["resume_code"])
    for assignment in Assignment.objects.all().only("pk"):
        assignment.image_key = ratings.models.new_public_id()
        assignment.save(update_fields=["image_key"])


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0007_drawing_task'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='participant',
            name='one_participant_per_prolific_pid',
        ),
        migrations.AddField(
            model_name='participant',
            name='attempt',
            field=models.PositiveSmallIntegerField(default=1, help_text='1 for the first to consent under a recruitment id; 2, 3, ... for later attempts from other browsers with the same id (a duplicate id: excluded from the results by default).'),
        ),
        migrations.AddField(
            model_name='participant',
            name='resume_code',
            field=models.CharField(default='', editable=False, max_length=9),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='participant',
            name='resume_failures',
            field=models.PositiveSmallIntegerField(default=0, editable=False, help_text='Wrong resume codes entered for this recruitment id.'),
        ),
        migrations.AddField(
            model_name='assignment',
            name='image_key',
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name='rating',
            name='server_ms',
            field=models.PositiveIntegerField(blank=True, help_text='From the trial page being served to the answer arriving, measured by the server (null for a page served without its timestamp).', null=True),
        ),
        migrations.RunPython(give_each_row_its_own, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='participant',
            name='resume_code',
            field=models.CharField(default=ratings.models.new_resume_code, editable=False, help_text='Shown to the participant at the start: with it, they continue on another browser.', max_length=9),
        ),
        migrations.AlterField(
            model_name='assignment',
            name='image_key',
            field=models.CharField(default=ratings.models.new_public_id, editable=False, max_length=32, unique=True),
        ),
        migrations.AddConstraint(
            model_name='participant',
            constraint=models.UniqueConstraint(condition=models.Q(('prolific_pid', ''), _negated=True), fields=('study', 'prolific_pid', 'attempt'), name='one_participant_per_prolific_pid_attempt'),
        ),
    ]
