"""The monitoring CLI's numbers (`manage.py monitor status|report|performance|metrics`), the seeds'
`node registry-monitor.js`: plain functions returning dicts or text, computed from the database.

Counts and sums are aggregated by the database (Count/Sum/Avg). Percentiles are not portable SQL
(SQLite has none), so they are computed in Python from a bounded fetch: at most PERCENTILE_SAMPLE
of the most recent latencies of each group (model, provider or window). Over a busier group they are
the percentiles of its most recent PERCENTILE_SAMPLE requests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily

from afmts import health
from analytics.models import UsageRecord
from registry import stats
from registry.models import Agent, AgentStatus, AIModel, Event, ModelChange, ModelStatus, Provider, ProviderStatus

PERCENTILE_SAMPLE = 5000  # latencies fetched per group for p50/p95 (the most recent ones)
LIST_LIMIT = 500  # free-model changes and health incidents listed in a report (the totals count them all)
INCIDENT_EVENTS = ("health_changed", "provider_down", "circuit_opened")

ERROR = ~Q(status="ok")


# ---- helpers ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """registry.stats.percentile, rounded to 2 decimals for reports."""
    value = stats.percentile(values, p)
    return None if value is None else round(value, 2)


def _recent(qs: QuerySet, field: str) -> list[float]:
    """The bounded fetch behind every percentile: the group's most recent PERCENTILE_SAMPLE values."""
    return list(
        qs.filter(**{f"{field}__isnull": False}).order_by("-ts").values_list(field, flat=True)[:PERCENTILE_SAMPLE]
    )


def _money(value: Decimal | None) -> float:
    return round(float(value or 0), 8)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


TOTALS = dict(
    requests=Count("id"),
    errors=Count("id", filter=ERROR),
    free_requests=Count("id", filter=Q(is_free=True)),
    tokens_in_sum=Sum("tokens_in"),
    tokens_out_sum=Sum("tokens_out"),
    cost_sum=Sum("cost"),
    reference_sum=Sum("reference_cost"),
    # Savings only where both costs are known: an unpriced request saves nothing we can tell.
    compared_reference=Sum("reference_cost", filter=Q(cost__isnull=False, reference_cost__isnull=False)),
    compared_cost=Sum("cost", filter=Q(cost__isnull=False, reference_cost__isnull=False)),
)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    requests, errors = row["requests"], row["errors"]
    return {
        "requests": requests,
        "errors": errors,
        "errorRate": _rate(errors, requests),
        "tokensIn": row["tokens_in_sum"] or 0,
        "tokensOut": row["tokens_out_sum"] or 0,
        "cost": _money(row["cost_sum"]),
        "referenceCost": _money(row["reference_sum"]),
        "savings": _money((row["compared_reference"] or 0) - (row["compared_cost"] or 0)),
    }


# ---- status -------------------------------------------------------------------------------------


def _window(qs: QuerySet, since: datetime) -> dict[str, Any]:
    window = qs.filter(ts__gte=since)
    row = window.aggregate(requests=Count("id"), errors=Count("id", filter=ERROR))
    return {
        "requests": row["requests"],
        "errors": row["errors"],
        "errorRate": _rate(row["errors"], row["requests"]),
        "p50LatencyMs": percentile(_recent(window, "latency_ms"), 0.5),
    }


def status(now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    checks = {name: check for name, check in health.run_checks_sync().items() if name != "liveState"}
    providers = list(Provider.objects.order_by("slug").values("slug", "enabled", "status", "failures", "last_error"))
    by_status = {s: 0 for s in ProviderStatus.values}
    for p in providers:
        by_status[p["status"]] = by_status.get(p["status"], 0) + 1
    models = AIModel.objects.aggregate(
        total=Count("id"),
        available=Count("id", filter=Q(status=ModelStatus.AVAILABLE)),
        degraded=Count("id", filter=Q(status=ModelStatus.DEGRADED)),
        down=Count("id", filter=Q(status=ModelStatus.DOWN)),
        retired=Count("id", filter=Q(status=ModelStatus.RETIRED)),
        free=Count("id", filter=Q(is_free=True) & ~Q(status=ModelStatus.RETIRED)),
        free_now=Count("id", filter=Q(is_free=True, status=ModelStatus.AVAILABLE, disabled=False, provider__enabled=True)),
    )
    agents = Agent.objects.aggregate(total=Count("id"), online=Count("id", filter=Q(status=AgentStatus.ONLINE)))
    usage = UsageRecord.objects.all()
    return {
        "time": _iso(now),
        "mode": settings.MODE,
        "healthy": all(c["ok"] for c in checks.values()),
        "checks": checks,
        "providers": {
            "total": len(providers),
            **by_status,
            "list": [
                {"slug": p["slug"], "enabled": p["enabled"], "status": p["status"], "failures": p["failures"],
                 "lastError": p["last_error"][:300]}
                for p in providers
            ],
        },
        "models": {
            "total": models["total"], "available": models["available"], "degraded": models["degraded"],
            "down": models["down"], "retired": models["retired"], "free": models["free"], "freeNow": models["free_now"],
        },
        "agents": {"total": agents["total"], "online": agents["online"]},
        "requests": {
            "last5m": _window(usage, now - timedelta(minutes=5)),
            "last1h": _window(usage, now - timedelta(hours=1)),
        },
    }


# ---- report -------------------------------------------------------------------------------------


def _by_model(qs: QuerySet) -> QuerySet:
    """`qs` with `attributed`: the model that served a request, or, when none did (every candidate
    failed, nothing could serve), the model the client asked for — never a "(none)" row."""
    return qs.annotate(attributed=Coalesce(NullIf("public_id", Value("")), "requested_model"))


def _grouped(qs: QuerySet, key: str) -> list[dict[str, Any]]:
    if key == "public_id":
        qs, key = _by_model(qs), "attributed"
    rows = qs.values(key).annotate(**TOTALS).order_by("-requests", key)
    out = []
    for row in rows:
        latencies = _recent(qs.filter(**{key: row[key]}), "latency_ms")
        out.append({
            ("model" if key == "attributed" else "provider"): row[key] or "(none)",
            **_summary(row),
            "freeRequests": row["free_requests"],
            "p50LatencyMs": percentile(latencies, 0.5),
            "p95LatencyMs": percentile(latencies, 0.95),
        })
    return out


def _incident(event: Event) -> dict[str, Any]:
    data = event.data or {}
    summary = {"event": event.event, "ts": _iso(event.ts)}
    for name in ("publicId", "provider", "status", "previousStatus", "error", "failures", "key"):
        if data.get(name) not in (None, ""):
            summary[name] = data[name][:300] if isinstance(data[name], str) else data[name]
    return summary


def report(since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    until = until or timezone.now()
    since = since or until - timedelta(hours=24)
    qs = UsageRecord.objects.filter(ts__gte=since, ts__lt=until)
    totals = qs.aggregate(**TOTALS)
    latencies = _recent(qs, "latency_ms")
    changes = ModelChange.objects.filter(field="is_free", at__gte=since, at__lt=until).order_by("at", "id")
    incidents = Event.objects.filter(event__in=INCIDENT_EVENTS, ts__gte=since, ts__lt=until).order_by("ts", "id")
    incident_counts = dict(incidents.values_list("event").annotate(n=Count("id")).order_by())
    return {
        "generatedAt": _iso(timezone.now()),
        "mode": settings.MODE,
        "period": {"since": _iso(since), "until": _iso(until), "hours": round((until - since).total_seconds() / 3600, 2)},
        "totals": {
            **_summary(totals),
            "freeRequests": totals["free_requests"],
            "freeShare": _rate(totals["free_requests"], totals["requests"]),
            "p50LatencyMs": percentile(latencies, 0.5),
            "p95LatencyMs": percentile(latencies, 0.95),
        },
        "byModel": _grouped(qs, "public_id"),
        "byProvider": _grouped(qs, "provider"),
        "freeModelChanges": {
            "count": changes.count(),
            "list": [
                {"model": c.public_id, "event": c.event, "old": c.old, "new": c.new, "at": _iso(c.at)}
                for c in changes[:LIST_LIMIT]
            ],
        },
        "healthIncidents": {
            "count": sum(incident_counts.values()),
            "byEvent": {name: incident_counts.get(name, 0) for name in INCIDENT_EVENTS},
            "list": [_incident(e) for e in incidents[:LIST_LIMIT]],
        },
        "notes": {
            "percentiles": f"from the most recent {PERCENTILE_SAMPLE} requests of each group",
            "savings": "reference cost minus cost, over requests where both are known",
        },
    }


# ---- performance --------------------------------------------------------------------------------


def performance(since: datetime | None = None) -> list[dict[str, Any]]:
    """One row per model with traffic since `since` (default the last 24 h), busiest first."""
    since = since or timezone.now() - timedelta(hours=24)
    qs = _by_model(UsageRecord.objects.filter(ts__gte=since))
    ok = Q(status="ok")
    timed = ok & Q(latency_ms__gt=0)
    rows = list(
        qs.values("attributed")
        .annotate(
            requests=Count("id"),
            ok=Count("id", filter=ok),
            model_pk=Max("model"),
            avg_latency=Avg("latency_ms"),
            timed_tokens=Sum("tokens_out", filter=timed),
            timed_ms=Sum("latency_ms", filter=timed),
        )
        .order_by("-requests", "attributed")
    )
    registry = {
        m["id"]: m
        for m in AIModel.objects.filter(pk__in=[r["model_pk"] for r in rows if r["model_pk"]]).values(
            "id", "latency_ms", "reliability", "status", "is_free"
        )
    }
    out = []
    for row in rows:
        group = qs.filter(attributed=row["attributed"])
        latencies = _recent(group, "latency_ms")
        ttfts = _recent(group, "ttft_ms")
        model = registry.get(row["model_pk"]) or {}
        tokens_per_s = (
            round(row["timed_tokens"] / (row["timed_ms"] / 1000), 1) if row["timed_ms"] and row["timed_tokens"] else None
        )
        out.append({
            "model": row["attributed"],
            "requests": row["requests"],
            "successRate": round(100 * row["ok"] / row["requests"], 1),
            "p50LatencyMs": percentile(latencies, 0.5),
            "p95LatencyMs": percentile(latencies, 0.95),
            "p50TtftMs": percentile(ttfts, 0.5),
            "tokensPerSecond": tokens_per_s,
            "registryLatencyMs": None if model.get("latency_ms") is None else round(model["latency_ms"], 1),
            "registryReliability": model.get("reliability"),
            "status": model.get("status", "unknown"),
            "isFree": model.get("is_free"),
        })
    return out


# ---- metrics ------------------------------------------------------------------------------------


class _RequestsTotal:
    """registry_requests_total as a counter family: a Counter object would add a `_created` sample
    stamped with this process's start, which means nothing for a count read from the database."""

    def __init__(self, value: int) -> None:
        self.value = value

    def collect(self):
        family = CounterMetricFamily("registry_requests", "Gateway requests recorded (all time).")
        family.add_metric([], self.value)
        yield family


def metrics_text(now: datetime | None = None) -> str:
    now = now or timezone.now()
    hour = UsageRecord.objects.filter(ts__gte=now - timedelta(hours=1)).aggregate(
        requests=Count("id"), errors=Count("id", filter=ERROR), avg=Avg("latency_ms")
    )
    models = AIModel.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status__in=[ModelStatus.AVAILABLE, ModelStatus.DEGRADED], disabled=False)),
        free=Count("id", filter=Q(is_free=True, status=ModelStatus.AVAILABLE, disabled=False, provider__enabled=True)),
    )
    agents = Agent.objects.aggregate(total=Count("id"), online=Count("id", filter=Q(status=AgentStatus.ONLINE)))
    providers = Provider.objects.aggregate(total=Count("id"), up=Count("id", filter=Q(status=ProviderStatus.UP)))

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_RequestsTotal(UsageRecord.objects.count()))

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge("registry_models_active", "Models available or degraded and not disabled.", models["active"])
    gauge("registry_models_total", "Models in the registry, retired included.", models["total"])
    gauge("registry_models_free", "Free models available now (not disabled, provider enabled).", models["free"])
    gauge("registry_agents_total", "Registered agents.", agents["total"])
    gauge("registry_agents_online", "Agents online.", agents["online"])
    gauge("registry_providers_total", "Configured providers.", providers["total"])
    gauge("registry_providers_up", "Providers whose last listing succeeded.", providers["up"])
    gauge(
        "registry_response_time_avg", "Mean gateway request latency over the last hour, ms (0 without requests).",
        round(hour["avg"] or 0, 2),
    )
    gauge(
        "registry_error_rate", "Share of gateway requests that failed over the last hour (0 without requests).",
        _rate(hour["errors"], hour["requests"]),
    )
    gauge("registry_requests_last_hour", "Gateway requests over the last hour.", hour["requests"])
    return generate_latest(registry).decode()
