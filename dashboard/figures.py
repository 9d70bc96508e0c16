"""Reads behind the dashboard's pages. Models come from the registry's in-memory snapshot (listing,
filtering, sorting and paging 10,000 models costs no query); usage figures from the analytics
selectors (rollups) and, for the last minutes, the raw usage records; live routing state (breakers,
quota) from this process's memory, as /api/routing/state shows it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max
from django.utils import timezone

from registry import discovery
from registry.models import (
    Agent,
    AgentStatus,
    HealthSample,
    ModelChange,
    ModelStatus,
    Provider,
    ProviderStatus,
    QuotaState,
)
from registry.selectors import ModelView, model_list, snapshot

PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "model": lambda m: m.public_id,
    "provider": lambda m: (m.provider, m.public_id),
    "type": lambda m: (m.type, m.public_id),
    "status": lambda m: (m.status, m.public_id),
    "free": lambda m: (not m.is_free, m.public_id),
    "price": lambda m: (m.input_price is None, (m.input_price or 0) + (m.output_price or 0), m.public_id),
    "latency": lambda m: (m.latency_ms is None, m.latency_ms or 0, m.public_id),
    "reliability": lambda m: (m.reliability is None, -(m.reliability or 0), m.public_id),
    "context": lambda m: (m.context_window is None, -(m.context_window or 0), m.public_id),
    "priority": lambda m: (-m.priority, m.public_id),
}


# ------------------------------------------------------------------ models table


@dataclass(frozen=True)
class Filters:
    search: str = ""
    provider: str = ""
    type: str = ""
    capability: str = ""
    free: str = ""  # "", "yes", "no"
    status: str = ""
    sort: str = "model"
    desc: bool = False
    page: int = 1
    size: int = 50

    @classmethod
    def parse(cls, q) -> Filters:
        def num(name: str, default: int) -> int:
            try:
                return max(1, int(q.get(name) or default))
            except ValueError:
                return default

        sort = q.get("sort") or "model"
        size = num("size", 50)
        return cls(
            search=(q.get("q") or "").strip()[:200], provider=q.get("provider") or "", type=q.get("type") or "",
            capability=q.get("capability") or "", free=q.get("free") if q.get("free") in ("yes", "no") else "",
            status=q.get("status") or "", sort=sort if sort in SORTS else "model", desc=q.get("dir") == "desc",
            page=num("page", 1), size=size if size in PAGE_SIZES else 50,
        )


@dataclass(frozen=True)
class Page:
    rows: list[ModelView]
    total: int
    page: int
    pages: int
    filters: Filters


def models_page(f: Filters) -> Page:
    """One page of the filtered, sorted models."""
    found = model_list(
        type=f.type or None, provider=f.provider or None, capability=f.capability or None,
        free={"yes": True, "no": False}.get(f.free), status=f.status or None, search=f.search or None,
    )
    found.sort(key=SORTS[f.sort], reverse=f.desc)
    pages = max(1, -(-len(found) // f.size))
    page = min(f.page, pages)
    start = (page - 1) * f.size
    return Page(found[start:start + f.size], len(found), page, pages, f)


def facets() -> dict[str, list[str]]:
    """The filter menus' choices, from the snapshot."""
    snap = snapshot()
    caps: set[str] = set()
    for m in snap.models:
        caps |= m.capabilities
    return {
        "providers": sorted({m.provider for m in snap.models}),
        "types": sorted({m.type for m in snap.models}),
        "capabilities": sorted(caps),
        "statuses": [s.value for s in ModelStatus],
    }


# ------------------------------------------------------------------ overview


def counts() -> dict[str, int]:
    snap = snapshot()
    providers = dict(Provider.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "models": sum(1 for m in snap.models if m.status != ModelStatus.RETIRED),
        "free": sum(1 for m in snap.ranked["free"] if m.is_free),
        "providersUp": providers.get(ProviderStatus.UP, 0),
        "providersDown": providers.get(ProviderStatus.DOWN, 0),
        "providersUnknown": providers.get(ProviderStatus.UNKNOWN, 0),
        "agentsOnline": Agent.objects.filter(status=AgentStatus.ONLINE).count(),
        "agents": Agent.objects.count(),
    }


def traffic(*, now: datetime | None = None) -> dict[str, Any]:
    """The last minute's rate, the last five minutes' p95 latency and error rate (raw records: the
    rollups lag by up to a minute), and today's spend and savings (analytics.selectors.today)."""
    from analytics.models import UsageRecord
    from analytics.selectors import today
    from registry.stats import percentile

    now = now or timezone.now()
    recent = UsageRecord.objects.filter(ts__gte=now - timedelta(minutes=5)).order_by("-id")
    rows = list(recent.values_list("ts", "latency_ms", "http_status")[:5000])
    minute = now - timedelta(minutes=1)
    last_minute = sum(1 for ts, _, _ in rows if ts >= minute)
    latencies = [lat for _, lat, _ in rows if lat is not None]
    errors = sum(1 for _, _, code in rows if code >= 400)
    p95 = percentile(latencies, 0.95)
    day = today(now=now)
    return {
        "rps": round(last_minute / 60, 2),
        "p95Ms": None if p95 is None else round(p95, 1),
        "errorRate": round(errors / len(rows), 4) if rows else 0.0,
        "requestsToday": day["requests"],
        "spendToday": day["spendUsd"],
        "savingsToday": day["savingsUsd"],
    }


def charts(window_name: str = "1h") -> dict[str, Any]:
    """Series for the overview's charts: requests, p95 latency and errors per bucket (uPlot's
    columns: epoch seconds, then one list per series)."""
    from analytics.selectors import performance, window

    report = performance(window(window_name if window_name in ("1h", "24h") else "1h"))
    xs, requests, p95, errors = [], [], [], []
    for point in report["series"]:
        xs.append(datetime.fromisoformat(point["start"].replace("Z", "+00:00")).timestamp())
        requests.append(point["requests"])
        p95.append(point["latencyMs"]["p95"])
        errors.append(point["errors"])
    return {"resolution": report["resolution"], "x": xs, "requests": requests, "p95": p95, "errors": errors}


# ------------------------------------------------------------------ one model


def model_quota(m: ModelView, *, now: datetime | None = None) -> dict[str, Any]:
    from registry.quota import quota_for

    now = now or timezone.now()
    states: dict = {}
    for state in QuotaState.objects.filter(provider_id=m.provider_id):
        states.setdefault((state.provider_id, state.model_id), []).append(state)
    return quota_for(m.api, m.provider_id, states, now)


def windows(quota: dict[str, Any]) -> list[dict[str, Any]]:
    """Quota windows with the fraction left, for bars."""
    out = []
    for name, w in quota["windows"].items():
        limit, remaining = w["limit"], w["remaining"]
        fraction = remaining / limit if limit and remaining is not None else None
        out.append({"name": name, **w, "percent": None if fraction is None else round(100 * fraction),
                    "low": round(limit * 0.2, 2) if limit else None})
    return out


def free_history(*, model_pk: int | None = None, provider: str | None = None, limit: int = 50) -> list[ModelChange]:
    changes = ModelChange.objects.filter(field="is_free")
    if model_pk is not None:
        changes = changes.filter(model_id=model_pk)
    if provider:
        changes = changes.filter(public_id__startswith=f"{provider}/")
    return list(changes.order_by("-at", "-id")[:limit])


def health_samples(model_pk: int, *, limit: int = 100) -> list[HealthSample]:
    return list(HealthSample.objects.filter(model_id=model_pk).order_by("-at")[:limit])


def latency_series(model_pk: int, samples: list[HealthSample]) -> dict[str, Any]:
    """The model's latency: every recent health sample, and the p95 per bucket of its usage over the
    last 24 hours (rollups)."""
    from analytics.selectors import model_usage, window

    points = sorted((s.at.timestamp(), s.latency_ms) for s in samples if s.latency_ms is not None)
    usage = model_usage(window("24h"), (model_pk, ""))
    buckets = [(datetime.fromisoformat(p["start"].replace("Z", "+00:00")).timestamp(), p["latencyMs"]["p95"])
               for p in usage["series"] if p["requests"]]
    return {"samples": {"x": [x for x, _ in points], "y": [y for _, y in points]},
            "p95": {"x": [x for x, _ in buckets], "y": [y for _, y in buckets]},
            "totals": usage["totals"]}


# ------------------------------------------------------------------ free models


def free_now(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """What is free and routable now, grouped by provider and quota pool (an account-wide quota is
    one pool for all its models; a per-model quota is a pool of one)."""
    from registry.quota import quota_for

    now = now or timezone.now()
    models = [m for m in model_list(free=True) if m.routable and m.status != ModelStatus.DOWN]
    states: dict = {}
    for state in QuotaState.objects.filter(provider_id__in={m.provider_id for m in models}):
        states.setdefault((state.provider_id, state.model_id), []).append(state)
    groups: dict[str, dict[str, Any]] = {}
    for m in models:
        quota = quota_for(m.api, m.provider_id, states, now)
        group = groups.setdefault(m.provider, {"provider": m.provider, "pools": {}})
        pool_key = "account" if m.quota_scope == "account" else f"model:{m.pk}"
        pool = group["pools"].setdefault(pool_key, {
            "name": "whole account" if pool_key == "account" else m.public_id,
            "shared": pool_key == "account", "windows": windows(quota), "blockedUntil": quota["blockedUntil"],
            "models": [],
        })
        pool["models"].append(m)
    return [{"provider": g["provider"], "pools": list(g["pools"].values())} for _, g in sorted(groups.items())]


# ------------------------------------------------------------------ providers


def providers(*, now: float | None = None) -> list[dict[str, Any]]:
    """Each provider with its status, last discovery, model counts, circuit state and quotas."""
    from routing.gateway.runtime import runtime

    now = now or time.time()
    snap = snapshot()
    breakers = runtime.live.breakers.snapshot(now)
    per_provider: dict[str, list[ModelView]] = {}
    for m in snap.models:
        per_provider.setdefault(m.provider, []).append(m)
    account = {}
    for state in QuotaState.objects.filter(model__isnull=True).order_by("window"):
        account.setdefault(state.provider_id, []).append(state)
    out = []
    for p in Provider.objects.all():
        models = per_provider.get(p.slug, [])
        open_models = [
            {"model": m.public_id, **breakers[f"model:{m.pk}"]} for m in models if f"model:{m.pk}" in breakers
        ]
        out.append({
            "p": p,
            "models": sum(1 for m in models if m.status != ModelStatus.RETIRED),
            "free": sum(1 for m in models if m.is_free and m.status != ModelStatus.RETIRED),
            "retired": sum(1 for m in models if m.status == ModelStatus.RETIRED),
            "breaker": breakers.get(f"provider:{p.slug}", {"state": "closed"}),
            "modelBreakers": open_models,
            "quotas": account.get(p.pk, []),
            "configured": {k: v for k, v in p.quota().items() if v is not None},
            "last": last_discovery(p),
        })
    return out


def last_discovery(p: Provider) -> dict[str, Any]:
    """What is known of the provider's last discovery: its last listing's result (kept in the shared
    cache by every cycle and every "Discover now"), else the provider's own fields and the changes
    its last changing listing made."""
    kept = discovery.last_result(p.slug)
    if kept and (p.last_discovery_at is None or kept["at"] >= p.last_discovery_at.timestamp() - 1):
        return kept
    changes = ModelChange.objects.filter(public_id__startswith=f"{p.slug}/")
    last_at = changes.aggregate(at=Max("at"))["at"]
    counted: dict[str, int] = {}
    if last_at is not None:
        for event, n in changes.filter(at=last_at).values_list("event").annotate(n=Count("id")).order_by():
            counted[event] = n
    return {
        "at": p.last_discovery_at.timestamp() if p.last_discovery_at else None,
        "seconds": None, "seen": None, "error": p.last_error,
        "new": counted.get("model_registered", 0), "changed": counted.get("model_updated", 0)
        + counted.get("model_became_free", 0) + counted.get("model_stopped_being_free", 0),
        "retired": counted.get("model_retired", 0),
        "changesAt": last_at.timestamp() if last_at else None,
    }


def keep_discovery(slug: str, result: Any) -> dict[str, Any]:
    """Keep a "Discover now" result (registry.discovery.ProviderResult) for the providers page."""
    discovery.keep_results([result])
    return discovery.last_result(slug) or {}


# ------------------------------------------------------------------ requests


def requests_after(after: int = 0, *, limit: int = 100) -> list[Any]:
    """Usage records newer than id `after`, newest first (the live requests page polls this)."""
    from analytics.models import UsageRecord

    rows = UsageRecord.objects.order_by("-id")
    if after:
        rows = rows.filter(id__gt=after)
    return list(rows[:limit])
