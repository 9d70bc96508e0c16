"""Monthly budgets per API key (USD, UTC months).

Contract: an admin sets `ApiKey.monthly_budget_usd` (API: PUT /api/keys/{id}/budget; admin). The
month's spend is summed from the day rollups by `budgets_refresh`, run by the rollup task after each
build (so it trails the traffic by about a minute), and stored on the key. The key's principal
(registry.auth, cached in memory) carries `budget_exhausted`; a key past its limit is served from
free models only, and refused with 402 when no free model can serve. Crossing AFMTS_BUDGET_WARNING_RATIO
publishes `budget_warning`, crossing the limit `budget_exhausted`, a new month `budget_renewed` for a
key that was exhausted — each through the one publisher, whose version bump refreshes every process's
key cache. Nothing here runs on the request path.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analytics.selectors import month_spend
from registry.budget import month_start
from registry.events import publish, publish_many
from registry.models import ApiKey

RANK = {"": 0, "warning": 1, "exhausted": 2}
ZERO = Decimal(0)


def level_of(spent: Decimal, limit: Decimal | None) -> str:
    if limit is None:
        return ""
    if spent >= limit:
        return "exhausted"
    if spent >= limit * Decimal(str(settings.AFMTS_BUDGET_WARNING_RATIO)):
        return "warning"
    return ""


def state(key: ApiKey, *, now: datetime | None = None) -> dict[str, Any]:
    """A key's budget as its owner sees it (GET /api/keys/me): spend read from the rollups now."""
    now = now or timezone.now()
    spent = month_spend([key.id], now=now).get(key.id, ZERO)
    limit = key.monthly_budget_usd
    return {
        "month": month_start(now).date().isoformat(),
        "monthlyBudgetUsd": None if limit is None else str(limit),
        "spentUsd": str(spent.quantize(Decimal("0.00000001"))),
        "remainingUsd": None if limit is None else str(max(limit - spent, ZERO).quantize(Decimal("0.00000001"))),
        "exhausted": limit is not None and spent >= limit,
        "freeOnly": limit is not None and spent >= limit,
    }


def _event_data(key: ApiKey, spent: Decimal, month: date) -> dict[str, Any]:
    return {"keyId": key.id, "name": key.name, "prefix": key.prefix, "month": month.isoformat(),
            "monthlyBudgetUsd": None if key.monthly_budget_usd is None else str(key.monthly_budget_usd),
            "spentUsd": str(spent)}


def _evaluate(key: ApiKey, spent: Decimal, month: date) -> list[tuple[str, dict]]:
    """Store the key's figures; the events its change of level calls for."""
    level = level_of(spent, key.monthly_budget_usd)
    new_month = key.budget_month != month
    was = "" if new_month else key.budget_level
    events = []
    if RANK[level] > RANK[was]:
        events.append((f"budget_{level}", _event_data(key, spent, month)))
    elif new_month and key.budget_level == "exhausted" and level != "exhausted":
        events.append(("budget_renewed", _event_data(key, spent, month)))
    if (key.budget_spent_usd, key.budget_month, key.budget_level) != (spent, month, level):
        key.budget_spent_usd, key.budget_month, key.budget_level = spent, month, level
        key.save(update_fields=["budget_spent_usd", "budget_month", "budget_level"])
    return events


def budgets_refresh(*, now: datetime | None = None) -> list[str]:
    """Refresh every budgeted key's month-to-date spend; returns the events published."""
    now = now or timezone.now()
    month = month_start(now).date()
    keys = list(ApiKey.objects.filter(revoked_at=None).filter(Q(monthly_budget_usd__isnull=False) | ~Q(budget_level="")))
    if not keys:
        return []
    spend = month_spend([k.id for k in keys], now=now)
    with transaction.atomic():
        events = [e for k in keys for e in _evaluate(k, spend.get(k.id, ZERO), month)]
        publish_many(events)
    return [name for name, _ in events]


@transaction.atomic
def key_budget_set(*, key: ApiKey, limit: Decimal | None, now: datetime | None = None) -> ApiKey:
    """Set (or clear, with None) a key's monthly budget; its level is re-evaluated at once."""
    now = now or timezone.now()
    key.monthly_budget_usd = limit
    key.save(update_fields=["monthly_budget_usd"])
    publish("api_key_updated", {"id": key.id, "name": key.name, "prefix": key.prefix, "scope": key.scope,
                                "monthlyBudgetUsd": None if limit is None else str(limit)})
    key_budget_evaluate(key=key, now=now)
    return key


@transaction.atomic
def key_budget_evaluate(*, key: ApiKey, now: datetime | None = None) -> list[str]:
    """A key's level against its budget as stored now (after it was set anywhere); returns the events published."""
    now = now or timezone.now()
    events = _evaluate(key, month_spend([key.id], now=now).get(key.id, ZERO), month_start(now).date())
    publish_many(events)
    return [name for name, _ in events]


def on_budget_set(sender: Any, key: ApiKey, **kwargs: Any) -> None:
    """registry.budget.budget_set's receiver (connected in AnalyticsConfig.ready)."""
    key_budget_evaluate(key=key)
