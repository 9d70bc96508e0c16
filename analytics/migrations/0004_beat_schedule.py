"""The analytics periodic tasks as django-celery-beat rows (like registry.0005): operators change them
in admin. Each expires before its next run so that a stalled worker never piles runs up."""

import json

from django.db import migrations

SCHEDULE = [
    # name, task, every (seconds), expires (seconds)
    ("AFMTS: usage rollups and budgets", "analytics.tasks.rollup_build", 60, 55),
    ("AFMTS: usage retention", "analytics.tasks.usage_prune", 3600, 3000),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, expires in SCHEDULE:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "interval": interval, "expire_seconds": expires, "kwargs": json.dumps({})},
        )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[n for n, *_ in SCHEDULE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0003_rollups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove)]
