"""The Celery app. Embedded mode: kombu's filesystem broker under the data folder; server mode: Redis.

The beat schedule lives in the database (django-celery-beat), so operators edit it in admin.
"""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "afmts.settings")

app = Celery("afmts")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **kwargs) -> None:
    """A worker (or beat) replaces the root logger's handlers with its own, outside LOGGING: they get
    the same secret-masking filter (afmts.logging), as do those of the task logger."""
    from afmts.logging import install

    install(logger.handlers)
    install(logging.getLogger().handlers)


@worker_ready.connect
def _serve_metrics(**kwargs) -> None:
    from afmts.metrics import serve_worker_metrics  # not at import: settings name the metrics folder first

    serve_worker_metrics()


@worker_ready.connect
def _discover_now(sender=None, **kwargs) -> None:
    """A first discovery cycle as soon as the worker is up, not one beat interval later: with `make
    run` the demo models are routable seconds after start. Several workers starting at once are
    harmless (a provider's listing is applied under its row lock, idempotently)."""
    from registry.tasks import discovery_cycle

    discovery_cycle.apply_async(expires=60)
