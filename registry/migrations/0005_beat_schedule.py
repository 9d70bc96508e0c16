"""The tracker's periodic tasks as django-celery-beat rows: operators change them in admin.
Each task expires before its next run so that a stalled worker never piles runs up."""

import json

from django.db import migrations

SCHEDULE = [
    # name, task, every (seconds), expires (seconds)
    ("AFMTS: discovery cycle", "registry.tasks.discovery_cycle", 30, 25),
    ("AFMTS: agent liveness", "registry.tasks.agents_check_liveness", 30, 25),
    ("AFMTS: health probes", "registry.tasks.health_probe_round", 60, 55),
    ("AFMTS: prune health samples", "registry.tasks.prune_history", 3600, 3000),
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
        ("registry", "0004_event_origin"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove)]
