"""Celery tasks of analytics: thin wrappers. Their schedule is rows of django-celery-beat (created by
migration analytics.0004, editable in admin)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def rollup_build() -> dict[str, int]:
    """Roll up the minutes that got usage since the last run, then refresh the keys' budgets."""
    from analytics.budgets import budgets_refresh
    from analytics.rollups import build

    done = build()
    done["budget_events"] = len(budgets_refresh())
    return done


@shared_task(ignore_result=True)
def usage_prune() -> dict[str, int]:
    from analytics.rollups import prune

    return prune()
