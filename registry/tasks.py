"""Celery tasks: thin wrappers that call services. Their schedule is rows of django-celery-beat
(created by migration registry.0005, editable in admin)."""

from __future__ import annotations

from celery import shared_task

from registry import services


@shared_task(ignore_result=True)
def agents_check_liveness() -> int:
    return len(services.agents_mark_stale())


@shared_task(ignore_result=True)
def discovery_cycle() -> int:
    from registry.tracker import discover

    return len(discover())


@shared_task(ignore_result=True)
def health_probe_round() -> int:
    """Probe the models that need it, and give the down models no probe may reach a trial."""
    from registry.health import health_trial
    from registry.tracker import probe

    return len(probe()) + len(health_trial())


@shared_task(ignore_result=True)
def prune_history() -> int:
    from registry.health import prune_samples

    return prune_samples()
