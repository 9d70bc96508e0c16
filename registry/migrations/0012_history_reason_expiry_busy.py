from django.db import migrations, models


def name_free_changes(apps, schema_editor) -> None:
    """History rows of is_free changes written as model_updated take the transition's own name."""
    change = apps.get_model("registry", "ModelChange")
    rows = change.objects.filter(event="model_updated", field="is_free")
    rows.filter(new=True).update(event="model_became_free")
    rows.filter(new=False).update(event="model_stopped_being_free")


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0011_provider_kind_free_tiers'),
    ]

    operations = [
        migrations.AddField(
            model_name='aimodel',
            name='expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='modelchange',
            name='reason',
            field=models.CharField(blank=True, default='', max_length=32),
        ),
        migrations.AlterField(
            model_name='agent',
            name='status',
            field=models.CharField(choices=[('online', 'Online'), ('offline', 'Offline'), ('busy', 'Busy')], default='online', max_length=16),
        ),
        migrations.AlterField(
            model_name='aimodel',
            name='type',
            field=models.CharField(choices=[('llm', 'Llm'), ('chat', 'Chat'), ('completion', 'Completion'), ('embedding', 'Embedding'), ('vision', 'Vision'), ('image', 'Image'), ('audio', 'Audio'), ('rerank', 'Rerank')], default='llm', max_length=16),
        ),
        migrations.RunPython(name_free_changes, migrations.RunPython.noop),
    ]
