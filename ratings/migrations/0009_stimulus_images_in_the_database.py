import os
from pathlib import Path

from django.conf import settings
from django.db import migrations, models


def move_images_into_the_database(apps, schema_editor):
    """Stimulus PNGs were files under MEDIA_ROOT (the environment variable, or media/ in the
    project): each goes into its stimulus's StimulusImage. A file that is missing is said, and its
    stimulus stays without an image (as it could not be shown before either)."""
    Stimulus = apps.get_model("ratings", "Stimulus")
    StimulusImage = apps.get_model("ratings", "StimulusImage")
    media_root = Path(os.environ.get("MEDIA_ROOT", settings.BASE_DIR / "media"))
    for pk, image_file in Stimulus.objects.values_list("pk", "image_file").iterator():
        path = media_root / image_file
        if path.is_file():
            StimulusImage.objects.create(stimulus_id=pk, png=path.read_bytes())
        else:
            print(f"\n  Stimulus {pk}: its image file {path} is missing; it stays without an image.")


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0008_participant_attempts_resume_codes_server_time_image_keys'),
    ]

    operations = [
        migrations.RenameField(model_name='stimulus', old_name='image', new_name='image_file'),
        migrations.CreateModel(
            name='StimulusImage',
            fields=[
                ('stimulus', models.OneToOneField(on_delete=models.deletion.CASCADE, primary_key=True, related_name='image', serialize=False, to='ratings.stimulus')),
                ('png', models.BinaryField()),
            ],
        ),
        migrations.RunPython(move_images_into_the_database, migrations.RunPython.noop),
        migrations.RemoveField(model_name='stimulus', name='image_file'),
        migrations.AlterField(
            model_name='study',
            name='attention_checks',
            field=models.PositiveIntegerField(default=3, help_text='Catch trials (meaningless scribbles, drawn for this study) mixed into each session.'),
        ),
        migrations.AlterField(
            model_name='study',
            name='instructions',
            field=models.TextField(default='You will see hand-drawn sketches, one at a time. Some were drawn by people in an online drawing game, others may not have been. For each sketch, tell us whether you think it was drawn by a person:\n\nReal: you are confident a person drew it.\nPossibly real: it might have been drawn by a person, but you are not sure.\nFake: you are confident a person did not draw it.\n\nThere are no trick questions and no time limit; go with your first impression. A few images are checks that you are paying attention: if an image shows only a meaningless scribble, grade it Fake.'),
        ),
    ]
