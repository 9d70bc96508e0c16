"""The Celery app. Embedded mode: kombu's filesystem broker under the data folder; server mode: Redis.

The beat schedule lives in the database (django-celery-beat), so operators edit it in admin.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "afmts.settings")

app = Celery("afmts")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
