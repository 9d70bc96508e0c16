"""Small formatting filters for the dashboard's templates (all output is escaped by Django)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def iso(value) -> str:
    """A datetime, or epoch seconds, or an ISO string, as ISO 8601 UTC (for data-age/data-countdown)."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@register.filter
def hms(value) -> str:
    """A datetime or epoch seconds as HH:MM:SS (UTC)."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%H:%M:%S")


@register.filter
def ms(value) -> str:
    return "–" if value is None else f"{float(value):,.0f} ms"


@register.filter
def usd(value) -> str:
    if value is None or value == "":
        return "–"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    return f"${amount:,.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


@register.filter
def price(value) -> str:
    """USD per million tokens; unknown shows as a dash."""
    return "–" if value is None else f"${float(value):g}/M"


@register.filter
def pct(value) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


@register.filter
def tokens(value) -> str:
    if value is None:
        return "–"
    value = int(value)
    return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:,}"
