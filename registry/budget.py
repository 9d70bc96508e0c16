"""The monthly budget rule on an API key's stored figures (USD, UTC months).

analytics.budgets keeps the figures up to date (the month's spend, summed from the rollups); the
key's principal (registry.auth) reads them through `is_exhausted`. Both sides import this module,
which imports nothing from them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from django.dispatch import Signal
from django.utils import timezone

# Sent, inside the writing transaction, when the registry sets a key's monthly budget (a key made
# with one, the admin's key form); analytics.budgets re-evaluates the key's level at once. Argument: key.
budget_set = Signal()


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def is_exhausted(limit: Decimal | None, spent: Decimal | None, month: date | None, *, now: datetime | None = None) -> bool:
    """Whether a key's stored figures put it past its budget this month."""
    if limit is None or spent is None or month is None:
        return False
    return month == month_start(now or timezone.now()).date() and spent >= limit
