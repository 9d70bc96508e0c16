"""Free-quota tracking, learned rather than typed in.

Each free model has a quota per window ("requests/minute", "requests/day", "tokens/minute",
"tokens/day", ...) with a scope: its own, or shared by the whole account (OpenRouter's 20/min and
50/day). What is known of a window combines
- the configured limit (from the provider's documented free tier, or an operator),
- the provider's own last word: rate-limit headers and 429 bodies (`quota_observe`),
- what AFMTS has sent since then (`quota_count`),
and a window past its reset time starts over. Time comes in as `now` (one clock, DESIGN.md).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from registry.models import AIModel, QuotaScope, QuotaState

PERIODS = {"minute": 60, "hour": 3600, "day": 86400, "month": 30 * 86400}
CONFIGURED = {"free_rpm": "requests/minute", "free_rpd": "requests/day", "free_tpm": "tokens/minute", "free_tpd": "tokens/day"}


def scope_model_id(model: AIModel | None) -> int | None:
    """The QuotaState.model a model's usage counts against (None = the account)."""
    if model is None or model.quota_scope == QuotaScope.ACCOUNT:
        return None
    return model.pk


def _window_seconds(window: str) -> int | None:
    return PERIODS.get(window.split("/", 1)[-1])


@transaction.atomic
def quota_observe(*, provider_id: int, model: AIModel | None, info, now: datetime | None = None, source: str = "headers") -> int:
    """Record what the provider said (a RateLimitInfo): limits, remaining and reset per window.
    A Retry-After (429) becomes a `blocked` window that ends when the provider said."""
    now = now or timezone.now()
    model_id = scope_model_id(model)
    written = 0
    windows = dict(getattr(info, "windows", {}) or {})
    for window, seen in windows.items():
        if seen.limit is None and seen.remaining is None:
            continue
        reset = seen.reset if seen.reset is not None else _window_seconds(window)
        _upsert(provider_id, model_id, window, {
            "limit": seen.limit, "remaining": seen.remaining, "used": 0, "observed_at": now, "source": source,
            "reset_at": now + timedelta(seconds=reset) if reset is not None else None,
        })
        written += 1
    if getattr(info, "retry_after", None):
        _upsert(provider_id, model_id, "blocked", {
            "limit": None, "remaining": 0, "used": 0, "observed_at": now, "source": source,
            "reset_at": now + timedelta(seconds=float(info.retry_after)),
        })
        written += 1
    return written


def _upsert(provider_id: int, model_id: int | None, window: str, fields: dict[str, Any]) -> None:
    updated = QuotaState.objects.filter(provider_id=provider_id, model_id=model_id, window=window).update(**fields)
    if not updated:
        try:
            with transaction.atomic():
                QuotaState.objects.create(provider_id=provider_id, model_id=model_id, window=window, **fields)
        except IntegrityError:  # created meanwhile by another worker
            QuotaState.objects.filter(provider_id=provider_id, model_id=model_id, window=window).update(**fields)


@transaction.atomic
def quota_count(*, model: AIModel, requests: int = 1, tokens: int = 0, now: datetime | None = None) -> None:
    """Count requests and tokens AFMTS sent on a free model against its quota windows. Windows known
    only from configuration start when first counted and reset after their period."""
    now = now or timezone.now()
    model_id = scope_model_id(model)
    known = set(
        QuotaState.objects.filter(provider_id=model.provider_id, model_id=model_id).values_list("window", flat=True)
    )
    for field, window in CONFIGURED.items():
        limit = getattr(model, field)
        if limit is not None and window not in known:
            _upsert(model.provider_id, model_id, window, {
                "limit": limit, "remaining": None, "used": 0, "observed_at": now, "source": "counted",
                "reset_at": now + timedelta(seconds=_window_seconds(window)),
            })
    states = QuotaState.objects.filter(provider_id=model.provider_id, model_id=model_id)
    for state in states:
        amount = requests if state.window.startswith("requests") else tokens if state.window.startswith("tokens") else 0
        if not amount:
            continue
        if state.reset_at is not None and now >= state.reset_at:
            # The window turned over: start a new one from this request.
            seconds = _window_seconds(state.window)
            QuotaState.objects.filter(pk=state.pk).update(
                used=amount, remaining=None, observed_at=now, source="counted",
                reset_at=now + timedelta(seconds=seconds) if seconds else None,
            )
        else:
            QuotaState.objects.filter(pk=state.pk).update(used=F("used") + amount)


@dataclass(frozen=True)
class WindowView:
    window: str
    limit: int | None
    remaining: int | None
    reset_at: datetime | None
    observed_at: datetime | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "resetAt": self.reset_at.isoformat().replace("+00:00", "Z") if self.reset_at else None,
            "observedAt": self.observed_at.isoformat().replace("+00:00", "Z") if self.observed_at else None,
            "source": self.source,
        }


def window_view(state: QuotaState | None, configured_limit: int | None, window: str, now: datetime) -> WindowView:
    if state is None:
        return WindowView(window, configured_limit, configured_limit, None, None, "configured")
    limit = state.limit if state.limit is not None else configured_limit
    if state.reset_at is not None and now >= state.reset_at:
        # Past its reset: the provider has given the whole window back.
        remaining = limit if window != "blocked" else None
        return WindowView(window, limit, remaining, None, state.observed_at, state.source)
    base = state.remaining if state.remaining is not None else limit
    remaining = None if base is None else max(0, base - state.used)
    return WindowView(window, limit, remaining, state.reset_at, state.observed_at, state.source)


def quota_for(
    model_row: dict[str, Any], provider_id: int, states: dict[tuple[int, int | None], list[QuotaState]], now: datetime
) -> dict[str, Any]:
    """The quota of one model as /api/free-models shows it: scope and every known window."""
    scope_id = None if model_row["quotaScope"] == QuotaScope.ACCOUNT else model_row["id"]
    rows = {s.window: s for s in states.get((provider_id, scope_id), [])}
    configured = {
        "requests/minute": model_row["freeQuota"]["requestsPerMinute"],
        "requests/day": model_row["freeQuota"]["requestsPerDay"],
        "tokens/minute": model_row["freeQuota"]["tokensPerMinute"],
        "tokens/day": model_row["freeQuota"]["tokensPerDay"],
    }
    windows: dict[str, Any] = {}
    for window in sorted(set(configured) | set(rows)):
        limit = configured.get(window)
        if limit is None and window not in rows:
            continue
        view = window_view(rows.get(window), limit, window, now)
        if window == "blocked" and view.reset_at is None:
            continue
        windows[window] = view.as_dict()
    fractions = [
        w["remaining"] / w["limit"] for w in windows.values() if w["limit"] and w["remaining"] is not None
    ]
    blocked = windows.get("blocked")
    return {
        "scope": model_row["quotaScope"],
        "windows": windows,
        "remainingFraction": 0.0 if blocked else (min(fractions) if fractions else None),
        "blockedUntil": blocked["resetAt"] if blocked else None,
    }


# ------------------------------------------------------------------ windows of the live bookkeeping

# Fixed windows count whole UTC minutes and days since the epoch; a month is a calendar month (UTC),
# which resets on the first at 00:00 (Cohere's trial: 1,000 calls a month).
FIXED_SECONDS = {"minute": 60, "day": 86400}


def window_bucket(window: str, now: float) -> int:
    """The period of `window` that `now` (epoch seconds) falls in."""
    period = window.split("/", 1)[-1]
    if period == "month":
        t = time.gmtime(now)
        return t.tm_year * 12 + t.tm_mon - 1
    return int(now // FIXED_SECONDS[period])


def window_bounds(window: str, bucket: int) -> tuple[float, float]:
    """(start, end) of a period of `window`, epoch seconds; the end is its reset."""
    period = window.split("/", 1)[-1]
    if period == "month":
        year, month = divmod(bucket, 12)
        start = calendar.timegm((year, month + 1, 1, 0, 0, 0))
        end = calendar.timegm((year + (month + 1) // 12, (month + 1) % 12 + 1, 1, 0, 0, 0))
        return float(start), float(end)
    seconds = FIXED_SECONDS[period]
    return float(bucket * seconds), float((bucket + 1) * seconds)


# ------------------------------------------------------------------ account pools

# Extra windows of a free tier (free_tiers.json quota keys) -> their window names.
EXTRA_WINDOWS = {
    "requests_per_month": "requests/month", "tokens_per_month": "tokens/month", "neurons_per_day": "neurons/day",
    "rph": "requests/hour", "tph": "tokens/hour",
}
# OpenRouter: 50 `:free` requests a day on a free-tier account, 1,000 once $10 of credit was bought
# (openrouter.ai/docs/api-reference/limits; `is_free_tier` of GET /api/v1/key says which).
OPENROUTER_DAILY = {True: 50, False: 1000}
KEY_META = "openrouterKey"
# Pool windows the gateway's live state enforces beside the per-minute and per-day requests (routing.live).
LIVE_POOL_WINDOWS = ("requests/month", "neurons/day")
# (pool key, {window: limit}, now) -> {window: {"used", "remaining", "resetAt" (epoch seconds)}}: what
# the gateway's live state counted. Set by the routing app when it is ready (registry imports nothing above it).
_live_pool_usage: Callable[[str, dict[str, int], float], dict[str, dict[str, Any]]] | None = None


def live_pool_usage_from(reader: Callable[[str, dict[str, int], float], dict[str, dict[str, Any]]] | None) -> None:
    global _live_pool_usage
    _live_pool_usage = reader


def pool_limits(kind: str) -> dict[str, int]:
    """The extra windows of a provider kind's account pool (free_tiers.json default), e.g.
    {"requests/month": 1000} for Cohere, {"neurons/day": 10000} for Cloudflare."""
    from registry.providers import tables

    extra = tables.provider_free_info(kind).get("default") or {}
    return {window: int(extra[name]) for name, window in EXTRA_WINDOWS.items() if extra.get(name) is not None}


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def openrouter_key_known(provider, now: datetime | None = None) -> dict[str, Any] | None:
    """What GET /api/v1/key said, if it was read in the current daily window (so it is read at most
    once a window); None when it is due."""
    now = now or timezone.now()
    key = (provider.metadata or {}).get(KEY_META)
    if not isinstance(key, dict) or not key.get("checkedAt"):
        return None
    try:
        checked = datetime.fromisoformat(key["checkedAt"].replace("Z", "+00:00"))
    except ValueError:
        return None
    return key if checked >= _day_start(now) else None


def openrouter_key_learned(provider_id: int, info: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Keep what the key endpoint said (tier, credit left) and set the account pool's daily cap."""
    from registry.models import Provider

    now = now or timezone.now()
    daily = OPENROUTER_DAILY[bool(info.get("is_free_tier"))]
    key = {
        "checkedAt": now.isoformat().replace("+00:00", "Z"), "isFreeTier": bool(info.get("is_free_tier")),
        "limitRemaining": info.get("limit_remaining"), "limit": info.get("limit"), "usage": info.get("usage"),
        "requestsPerDay": daily,
    }
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider_id)
        Provider.objects.filter(pk=provider_id).update(metadata={**(provider.metadata or {}), KEY_META: key})
        state = QuotaState.objects.filter(provider_id=provider_id, model=None, window="requests/day")
        if not state.update(limit=daily):
            _upsert(provider_id, None, "requests/day", {
                "limit": daily, "remaining": None, "used": 0, "observed_at": now, "source": "key",
                "reset_at": _day_start(now) + timedelta(days=1),
            })
    return key


def openrouter_apply_cap(listing, key: dict[str, Any] | None) -> None:
    """The account's daily cap on every `:free` record of the listing (the table says 50)."""
    if not key or not key.get("requestsPerDay"):
        return
    for record in listing.models:
        if record.is_free and record.quota_scope == QuotaScope.ACCOUNT:
            record.quota = {**(record.quota or {}), "rpd": int(key["requestsPerDay"])}


def quota_pools(
    rows: list[tuple[int, dict[str, Any]]], states: dict[tuple[int, int | None], list[QuotaState]], now: datetime,
) -> list[dict[str, Any]]:
    """Account-wide free quotas, one pool per provider account: every free model of the account draws
    on it. `rows` are (provider id, model API row) of free models. A pool's `key` is the gateway's own
    name for the scope (routing.live.scope_of), so /api/routing/state and this agree."""
    from registry.models import Provider

    shared: dict[int, list[dict[str, Any]]] = {}
    for provider_id, row in rows:
        if row["quotaScope"] == QuotaScope.ACCOUNT:
            shared.setdefault(provider_id, []).append(row)
    if not shared:
        return []
    providers = {p["id"]: p for p in Provider.objects.filter(pk__in=shared).values("id", "slug", "kind", "metadata")}
    pools = []
    for provider_id, models in sorted(shared.items(), key=lambda item: providers[item[0]]["slug"]):
        provider = providers[provider_id]
        pool = quota_for(models[0], provider_id, states, now)
        rows_by_window = {s.window: s for s in states.get((provider_id, None), [])}
        extra = pool_limits(provider["kind"])
        for window, limit in extra.items():
            pool["windows"][window] = window_view(rows_by_window.get(window), limit, window, now).as_dict()
        live = {w: limit for w, limit in extra.items() if w in LIVE_POOL_WINDOWS}
        if live and _live_pool_usage is not None:
            for window, seen in _live_pool_usage(f"a:{provider_id}", live, now.timestamp()).items():
                reset = datetime.fromtimestamp(seen["resetAt"], tz=UTC) if seen.get("resetAt") else None
                pool["windows"][window].update(
                    used=seen["used"], remaining=seen["remaining"], source="live",
                    resetAt=reset.isoformat().replace("+00:00", "Z") if reset else None,
                )
            fractions = [w["remaining"] / w["limit"] for w in pool["windows"].values()
                         if w.get("limit") and w.get("remaining") is not None]
            if fractions and not pool["blockedUntil"]:
                pool["remainingFraction"] = max(0.0, min(fractions))
        out = {
            "provider": provider["slug"], "providerKind": provider["kind"], "key": f"a:{provider_id}",
            "models": len(models), **pool,
        }
        key = (provider["metadata"] or {}).get(KEY_META)
        if isinstance(key, dict):
            out["account"] = {name: key.get(name) for name in ("isFreeTier", "limitRemaining", "checkedAt")}
        pools.append(out)
    return pools
